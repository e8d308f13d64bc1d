"""Knowledge extraction: documents to Markdown, cleaning, chunking, QA pairs with evidence and
the checks that prove each pair grounded."""
