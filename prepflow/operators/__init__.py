"""Built-in operators, one subpackage per domain. Modules here are imported by the registry on
first lookup; keep heavy imports (models, optional packages) inside methods or ``setup``."""
