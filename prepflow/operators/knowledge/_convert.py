"""Document bytes -> Markdown with structure, one function per document type.

Each function returns a :class:`Converted` (the Markdown, and where each page or section starts
and ends in it) or raises :class:`ConversionError` with a reason a user can act on. The heavy
libraries are imported inside the functions (the ``documents`` extra), so importing the
knowledge operators stays cheap.

Choices (measured in ``benchmarks/documents_converters.py``): PDF text comes from PDFium
(pypdfium2, 15-40x faster than pypdf or pdfminer/pdfplumber and in reading order on
multi-column pages), headings from the PDF's outline, and tables from pdfplumber only on pages
that draw the thin rules of a grid; HTML, DOCX (through mammoth) and EPUB chapters go through one
HTML -> Markdown path (boilerplate pruned by tag, role and class, then markdownify), since
trafilatura drops the headings and fences of documentation pages; trafilatura stays available
for web articles (``html_extractor: trafilatura``).
"""

from __future__ import annotations

import io
import posixpath
import re
import zipfile
from dataclasses import dataclass, field
from typing import Any
from xml.etree import ElementTree

MISSING = "needs the documents extra: pip install 'prepflow[documents]'"
OCR_HINT = (
    "OCR needs the ocr extra and the tesseract program: pip install 'prepflow[ocr]' and "
    "apt-get install tesseract-ocr (tesseract-ocr-chi-sim for Chinese)"
)


class ConversionError(Exception):
    """A document that cannot be converted; the message says why (encrypted, broken, empty...)."""

    def __init__(self, kind: str, message: str):
        super().__init__(message)
        self.error_type = kind


@dataclass
class Converted:
    """Markdown and its page (PDF) or section (EPUB) spans: ``(number, start, end)`` offsets."""

    markdown: str
    pages: list[tuple[int, int, int]] = field(default_factory=list)
    title: str | None = None


@dataclass(frozen=True)
class Options:
    pdf_tables: bool = True
    min_table_lines: int = 3
    ocr: bool = False
    ocr_languages: str = "eng"
    password: str | None = None
    html_extractor: str = "structure"


def convert(kind: str, data: bytes, options: Options) -> Converted:
    """Convert ``data`` of document type ``kind``; raise :class:`ConversionError` on failure."""
    if not data:
        raise ConversionError("EmptyDocument", "the file is empty")
    converter = _CONVERTERS.get(kind)
    if converter is None:
        supported = ", ".join(sorted(_CONVERTERS))
        raise ConversionError(
            "UnknownType", f"no converter reads this file type; supported: {supported}"
        )
    out = converter(data, options)
    if not out.markdown.strip():
        raise ConversionError("EmptyDocument", "the document holds no text")
    return out


def _require(module: str) -> Any:
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise ConversionError(
            "MissingDependency", f"{module} is not installed: {MISSING}"
        ) from None


# ---- text and Markdown ---------------------------------------------------------------------


def decode_text(data: bytes) -> str:
    """UTF-8 (with or without BOM), else the encoding charset-normalizer finds most likely."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        pass
    charset_normalizer = _require("charset_normalizer")
    best = charset_normalizer.from_bytes(data).best()
    if best is None:
        raise ConversionError("UndecodableText", "the file is not text in any known encoding")
    return str(best)


def _text(data: bytes, options: Options) -> Converted:
    return Converted(_tidy(decode_text(data)))


# ---- HTML, DOCX, EPUB ----------------------------------------------------------------------

_BOILERPLATE_TAGS = (
    "script", "style", "noscript", "nav", "header", "footer", "aside", "form", "iframe", "svg",
    "button", "template",
)  # fmt: skip
_BOILERPLATE_ROLES = ("navigation", "banner", "contentinfo", "search", "complementary")
_BOILERPLATE_NAMES = re.compile(
    r"(?:^|[\s_-])(?:nav|navheader|navfooter|navbar|breadcrumbs?|sidebar|menu|toc|cookie|"
    r"skip|related|share|social|advert|ads|footer|header|masthead|pagination)(?:$|[\s_-])",
    re.I,
)


def html_to_markdown(html: bytes | str, options: Options) -> Converted:
    """Main content of an HTML page as Markdown (headings, lists, tables, code fences)."""
    lxml_html = _require("lxml.html")
    markdownify = _require("markdownify")
    try:
        tree = lxml_html.document_fromstring(html)
    except Exception as e:  # lxml raises ParserError/ValueError on empty or broken input
        raise ConversionError("BrokenDocument", f"not parseable as HTML: {e}") from None
    title_el = tree.find(".//title")
    title = " ".join(title_el.text_content().split()) if title_el is not None else None
    if options.html_extractor == "trafilatura":
        return _trafilatura(tree, title)
    for el in list(tree.iter()):
        if not isinstance(el.tag, str):  # comments, processing instructions
            el.drop_tree() if el.getparent() is not None else None
            continue
        names = f"{el.get('class', '')} {el.get('id', '')}"
        if (
            el.tag in _BOILERPLATE_TAGS
            or el.get("role") in _BOILERPLATE_ROLES
            or (
                el.tag not in ("html", "body", "main", "article")
                and _BOILERPLATE_NAMES.search(names)
            )
        ) and el.getparent() is not None:
            el.drop_tree()
    main = next(iter(tree.xpath("//main | //article | //*[@role='main']")), tree.find("body"))
    if main is None:
        main = tree
    markup = lxml_html.tostring(main, encoding="unicode")
    md = markdownify.markdownify(
        markup,
        heading_style="ATX",
        bullets="-",
        strip=["a", "img"],
        escape_underscores=False,
        escape_asterisks=False,
    )
    return Converted(_tidy(md), title=title)


def _trafilatura(tree: Any, title: str | None) -> Converted:
    trafilatura = _require("trafilatura")
    md = trafilatura.extract(
        tree, output_format="markdown", include_tables=True, include_formatting=True
    )
    return Converted(_tidy(md or ""), title=title)


def _html(data: bytes, options: Options) -> Converted:
    return html_to_markdown(data, options)


def _docx(data: bytes, options: Options) -> Converted:
    mammoth = _require("mammoth")
    try:
        result = mammoth.convert_to_html(io.BytesIO(data))
    except zipfile.BadZipFile:
        raise ConversionError("BrokenDocument", "not a DOCX file (not a zip archive)") from None
    except KeyError as e:
        raise ConversionError("BrokenDocument", f"not a DOCX file (no {e} part)") from None
    return html_to_markdown(f"<html><body>{result.value}</body></html>", options)


_CONTAINER_NS = {"c": "urn:oasis:names:tc:opendocument:xmlns:container"}
_OPF_NS = {"opf": "http://www.idpf.org/2007/opf", "dc": "http://purl.org/dc/elements/1.1/"}


def _epub(data: bytes, options: Options) -> Converted:
    """The spine's XHTML documents in reading order; each is one section of ``pages``."""
    try:
        book = zipfile.ZipFile(io.BytesIO(data))
        names = set(book.namelist())
        if "META-INF/encryption.xml" in names:
            raise ConversionError("EncryptedDocument", "the EPUB is encrypted (DRM)")
        container = ElementTree.fromstring(book.read("META-INF/container.xml"))
        opf_path = container.find(".//c:rootfile", _CONTAINER_NS).get("full-path")
        opf = ElementTree.fromstring(book.read(opf_path))
    except ConversionError:
        raise
    except (zipfile.BadZipFile, KeyError, AttributeError, ElementTree.ParseError) as e:
        raise ConversionError("BrokenDocument", f"not a readable EPUB: {e}") from None
    base = posixpath.dirname(opf_path)
    manifest = {
        item.get("id"): item.get("href")
        for item in opf.iterfind(".//opf:manifest/opf:item", _OPF_NS)
    }
    title_el = opf.find(".//dc:title", _OPF_NS)
    parts: list[str] = []
    pages: list[tuple[int, int, int]] = []
    at = 0
    for number, ref in enumerate(opf.iterfind(".//opf:spine/opf:itemref", _OPF_NS), 1):
        if ref.get("linear") == "no":  # navigation and cover pages outside the reading order
            continue
        href = manifest.get(ref.get("idref"))
        path = posixpath.normpath(posixpath.join(base, href)) if href else None
        if path is None or path not in names:
            raise ConversionError("BrokenDocument", f"spine item {ref.get('idref')!r} is missing")
        md = html_to_markdown(book.read(path), options).markdown
        if not md:
            continue
        if parts:
            at += 2
        parts.append(md)
        pages.append((number, at, at + len(md)))
        at += len(md)
    title = " ".join(title_el.text.split()) if title_el is not None and title_el.text else None
    return Converted("\n\n".join(parts), pages, title)


# ---- PDF -------------------------------------------------------------------------------------


def _pdf(data: bytes, options: Options) -> Converted:
    pdfium = _require("pypdfium2")
    try:
        pdf = pdfium.PdfDocument(data, password=options.password)
    except pdfium.PdfiumError as e:
        if "password" in str(e).lower():
            raise ConversionError(
                "EncryptedDocument", "the PDF is encrypted: give its password (password=)"
            ) from None
        raise ConversionError("BrokenDocument", f"not a readable PDF: {e}") from None
    try:
        return _pdf_pages(pdf, data, options)
    finally:
        pdf.close()


def _pdf_pages(pdf: Any, data: bytes, options: Options) -> Converted:
    import pypdfium2.raw as raw

    headings = _outline(pdf)
    plumber: Any = None
    texts: list[str] = []
    try:
        for index in range(len(pdf)):
            page = pdf[index]
            textpage = page.get_textpage()
            try:
                tables: list[tuple[tuple[float, float, float, float], str]] = []
                if options.pdf_tables and _ruled(page, raw, options.min_table_lines):
                    if plumber is None:
                        plumber = _require("pdfplumber").open(io.BytesIO(data))
                    tables = _tables(plumber.pages[index])
                text = _page_text(page, textpage, tables)
            finally:
                textpage.close()
                page.close()
            if not text.strip() and options.ocr:
                text = _ocr(pdf, index, options)
            texts.append(_mark_headings(text, headings.get(index, [])))
    finally:
        if plumber is not None:
            plumber.close()
    if not any(t.strip() for t in texts):
        hint = "" if options.ocr else f"; set ocr: true to read it ({OCR_HINT})"
        raise ConversionError("NoTextLayer", f"the PDF has no text layer (scanned?){hint}")
    parts, pages, at = [], [], 0
    for number, text in enumerate(texts, 1):
        if parts:
            at += 2
        parts.append(text)
        pages.append((number, at, at + len(text)))
        at += len(text)
    title = pdf.get_metadata_value("Title") or None
    return Converted("\n\n".join(parts), pages, title)


def _outline(pdf: Any) -> dict[int, list[tuple[int, str]]]:
    """Page index -> [(level, title)] of the PDF's bookmarks (level 1 = top)."""
    out: dict[int, list[tuple[int, str]]] = {}
    try:
        for item in pdf.get_toc(max_depth=6):
            dest = item.get_dest()
            index = dest.get_index() if dest is not None else None
            title = " ".join(item.get_title().split())
            if index is not None and title:
                out.setdefault(index, []).append((item.level + 1, title))
    except Exception:  # a broken outline costs the headings, not the document
        return {}
    return out


def _mark_headings(text: str, headings: list[tuple[int, str]]) -> str:
    """Turn the lines that carry a bookmark's title into Markdown headings; other lines that
    start with ``#`` (shell comments in code) are escaped so they do not read as headings."""
    lines = [f"\\{line}" if line.startswith("#") else line for line in text.split("\n")]
    start = 0
    for level, title in headings:
        key = _squash(title)
        for i in range(start, len(lines)):
            line = _squash(lines[i])
            if line and (line == key or (line.endswith(key) and len(line) - len(key) <= 12)):
                lines[i] = f"{'#' * min(level, 6)} {lines[i].strip()}"
                start = i + 1
                break
    return "\n".join(lines)


def _squash(s: str) -> str:
    return re.sub(r"\s+", "", s).lower()


def _ruled(page: Any, raw: Any, need: int) -> bool:
    """Whether the page draws at least ``need`` thin horizontal and ``need`` thin vertical
    rules: the grid of a table (a framed code block or a shaded box has none or two), so
    pdfplumber, 40x slower than PDFium, only reads the pages that may hold a table."""
    across = down = 0
    for obj in page.get_objects(max_depth=1):
        if obj.type != raw.FPDF_PAGEOBJ_PATH:
            continue
        left, bottom, right, top = obj.get_bounds()
        if right - left < 1.5 and top - bottom > 3:
            down += 1
        elif top - bottom < 1.5 and right - left > 3:
            across += 1
        if across >= need and down >= need:
            return True
    return False


def _tables(page: Any) -> list[tuple[tuple[float, float, float, float], str]]:
    """(bbox in pdfplumber's top-down coordinates, Markdown) of each real table on the page:
    at least two rows and two columns (a framed code block is one column)."""
    out = []
    for table in page.find_tables():
        rows = [[_cell(c) for c in row] for row in table.extract()]
        if len(rows) < 2 or max(len(r) for r in rows) < 2:
            continue
        out.append((table.bbox, markdown_table(rows)))
    return out


def _cell(value: str | None) -> str:
    return " ".join((value or "").split()).replace("|", "\\|")


def markdown_table(rows: list[list[str]]) -> str:
    """A GitHub-flavoured Markdown table; the first row is the header."""
    width = max(len(r) for r in rows)
    rows = [r + [""] * (width - len(r)) for r in rows]
    lines = ["| " + " | ".join(rows[0]) + " |", "|" + "---|" * width]
    lines += ["| " + " | ".join(r) + " |" for r in rows[1:]]
    return "\n".join(lines)


def _page_text(page: Any, textpage: Any, tables: list[Any]) -> str:
    """The page's text in reading order, each table replaced by its Markdown in place."""
    if not tables:
        return _clean_pdf_text(textpage.get_text_bounded())
    width, height = page.get_size()
    parts, top = [], height  # PDF space: y grows upwards; pdfplumber's top grows downwards
    for (x0, t, x1, b), md in sorted(tables, key=lambda item: item[0][1]):
        parts.append(textpage.get_text_bounded(0, height - t, width, top))
        parts.append(textpage.get_text_bounded(0, height - b, x0, height - t))  # left of it
        parts.append("\n" + md + "\n")
        parts.append(textpage.get_text_bounded(x1, height - b, width, height - t))
        top = height - b
    parts.append(textpage.get_text_bounded(0, 0, width, top))
    return _clean_pdf_text("\n".join(p for p in parts if p.strip()))


def _clean_pdf_text(text: str) -> str:
    # PDFium writes \r\n between lines and \x02 where a word was hyphenated across lines
    text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\x02", "")
    text = text.replace("\xa0", " ")
    text = re.sub(r"^[•●▪] ?", "- ", text, flags=re.M)
    return re.sub(r"^[\u2013◦○] ?", "  - ", text, flags=re.M).strip()


def _ocr(pdf: Any, index: int, options: Options) -> str:
    try:
        import pytesseract
    except ImportError:
        raise ConversionError("MissingDependency", OCR_HINT) from None
    image = pdf[index].render(scale=300 / 72).to_pil()
    try:
        return pytesseract.image_to_string(image, lang=options.ocr_languages)
    except pytesseract.TesseractNotFoundError:
        raise ConversionError("MissingDependency", OCR_HINT) from None


def _tidy(md: str) -> str:
    """Unix newlines, plain spaces, no trailing spaces, at most one blank line in a row."""
    md = md.replace("\r\n", "\n").replace("\r", "\n").replace("\xa0", " ")
    md = re.sub(r"[ \t]+\n", "\n", md)
    return re.sub(r"\n{3,}", "\n\n", md).strip()


_CONVERTERS = {
    "pdf": _pdf,
    "html": _html,
    "docx": _docx,
    "epub": _epub,
    "markdown": _text,
    "text": _text,
}
