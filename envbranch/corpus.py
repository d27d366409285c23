"""A small, real text corpus built from the Python standard library's own docstrings.

Where the data comes from
-------------------------
Every Python installation ships its standard library, and most of it is documented in
place: modules, functions and classes carry docstrings written by the CPython developers.
:func:`load_corpus` imports a fixed, hand-picked table of about fifty standard-library
modules (stdlib only, via :mod:`importlib`; nothing is downloaded, no network is touched)
and turns their docstrings into documents:

* one document per public member (a function or class the module defines or exports,
  whose name does not start with ``_``), keyed by its qualified name (``json.dumps``);
  its text is the first paragraph of the docstring with whitespace collapsed, without a
  leading call signature (``deque([iterable[, maxlen]]) --> deque object``), clipped to
  600 characters. At most :data:`MEMBERS_PER_MODULE` members per module, first by name;
* one document per module for the module's own docstring (``kind == "module"``), keyed
  by the module name (``json``).

Member paragraphs shorter than 20 characters (module ones under 10) are skipped, and
identical texts are kept once (the first by key: ``bisect.bisect`` and
``bisect.bisect_right`` share a docstring).
Iteration is sorted everywhere, so the corpus is deterministic for a given Python build
(docstrings change between Python versions, and a module whose C extension is missing
is skipped rather than failing the load).

Why the judgments are honest, and where they stop
-------------------------------------------------
The table groups the modules by the chapter they belong to in the table of contents of
the Python Library Reference ("Text Processing Services", "Data Types", ...). That
grouping was made by the Python documentation's editors, independently of this project
and of any retrieval model, and it is the only source of truth used here:

* **retrieval queries**: for every module whose docstring opens with a usable summary,
  the query is that summary's first sentence (``heapq``: "Heap queue algorithm (a.k.a.
  priority queue)."); the module's own document is judged grade 2 and each of its member
  documents grade 1. Relevance means "belongs to the module this summary describes";
* **taxonomy labels**: each member document's expected label is its module's chapter,
  and the reference documents the labels are learned from are one per chapter (the
  chapter title with the summaries of its modules).

The limits: relevance is judged by module membership, not by a human reading each
document. A member of another module can answer a query perfectly well and still count
as irrelevant (``zlib.crc32`` for "Conversion between binary data and ASCII"), and a
member's grade says nothing about how well its own text matches the summary. Labels are
equally structural: ``random`` is in "Numeric and Mathematical Modules" even where a
docstring reads like cryptography. The numbers are good for comparing pipelines against
each other on the same corpus, not as absolute measures of quality.
"""

from __future__ import annotations

import functools
import importlib
import inspect
import re
import warnings
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

MAX_TEXT = 600
"""Longest document text, in characters."""

MIN_TEXT = 20
"""Shortest member docstring paragraph kept, in characters."""

MEMBERS_PER_MODULE = 12
"""At most this many member documents per module, first by sorted name."""

MIN_MODULE_TEXT = 10
"""Shortest module docstring paragraph kept (``"Temporary files."`` is a usable summary)."""

MAX_SUMMARY = 200
"""Longest module summary (query text), in characters."""

CHAPTERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("Text Processing Services", ("difflib", "re", "string", "textwrap", "unicodedata")),
    ("Binary Data Services", ("codecs", "struct")),
    (
        "Data Types",
        (
            "array",
            "bisect",
            "calendar",
            "collections",
            "copy",
            "datetime",
            "enum",
            "heapq",
            "pprint",
        ),
    ),
    (
        "Numeric and Mathematical Modules",
        ("cmath", "decimal", "fractions", "math", "random", "statistics"),
    ),
    ("Functional Programming Modules", ("functools", "itertools", "operator")),
    (
        "File and Directory Access",
        ("filecmp", "fnmatch", "glob", "os.path", "pathlib", "shutil", "tempfile"),
    ),
    ("Data Compression and Archiving", ("bz2", "gzip", "lzma", "tarfile", "zipfile", "zlib")),
    ("File Formats", ("configparser", "csv")),
    ("Cryptographic Services", ("hashlib", "hmac", "secrets")),
    ("Internet Data Handling", ("base64", "binascii", "json", "mimetypes")),
    ("Python Runtime Services", ("abc", "contextlib", "dataclasses", "warnings")),
)
"""Modules by chapter of the Python Library Reference, in the reference's order."""

# A leading call signature, as C functions and old-style docstrings spell it:
# ``name(args)``, ``var = name(args)``, one nested level of parentheses.
_SIGNATURE = re.compile(r"(?:\w+\s*=\s*)?[A-Za-z_][\w.]*\((?:[^()]|\([^()]*\))*\)")
# What may follow a signature before the description starts: ``-> value.`` / ``--> x``
# (to the end of the sentence or paragraph), or `` - `` (the description follows).
_AFTER_SIGNATURE = re.compile(r"\s*-{1,2}>\s*[^.]*?(?:\.\s+|\.?$)|\s+-\s+|\s*$")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z\"'(`])")


@dataclass(frozen=True)
class CorpusDocument:
    """One document: a docstring paragraph (or a chapter reference text)."""

    key: str
    text: str
    metadata: dict[str, str] = field(default_factory=dict, hash=False)


@dataclass(frozen=True)
class Query:
    """A retrieval query with graded judgments ``{document key: grade}``."""

    query_id: str
    text: str
    judgments: dict[str, int] = field(default_factory=dict, hash=False)


@dataclass(frozen=True)
class Labelled:
    """A document with its expected taxonomy label (a chapter title)."""

    key: str
    text: str
    label: str


@dataclass(frozen=True)
class Corpus:
    """Documents, retrieval queries, chapter references and labelled documents.

    Treat it as read-only: :func:`load_corpus` hands out one cached instance.
    """

    documents: list[CorpusDocument] = field(hash=False)
    queries: list[Query] = field(hash=False)
    references: list[CorpusDocument] = field(hash=False)
    labelled: list[Labelled] = field(hash=False)
    chapters: list[str] = field(hash=False)

    def modules(self) -> list[str]:
        """The modules with documents, by chapter (reference order) then name."""
        order = {chapter: index for index, chapter in enumerate(self.chapters)}
        found = {(doc.metadata["chapter"], doc.metadata["module"]) for doc in self.documents}
        return [module for _, module in sorted(found, key=lambda cm: (order[cm[0]], cm[1]))]

    def sample(self, modules: int) -> Corpus:
        """A smaller corpus of ``modules`` modules, spread across the chapters.

        Modules are taken round-robin over the chapters (in the reference's order), the
        first by name within each chapter first, so every chapter is present when
        ``modules >= len(self.chapters)``. Documents, queries, references and labelled
        documents are all restricted to the chosen modules; chapter references are
        rebuilt from the chosen modules' summaries only.
        """
        if modules < 1:
            raise ValueError(f"sample needs at least one module, got {modules}")
        by_chapter: dict[str, list[str]] = {chapter: [] for chapter in self.chapters}
        for doc in self.documents:
            names = by_chapter[doc.metadata["chapter"]]
            if doc.metadata["module"] not in names:
                names.append(doc.metadata["module"])
        queues = [sorted(names) for names in by_chapter.values() if names]
        chosen: set[str] = set()
        depth = 0
        while len(chosen) < modules and any(depth < len(queue) for queue in queues):
            for queue in queues:
                if depth < len(queue) and len(chosen) < modules:
                    chosen.add(queue[depth])
            depth += 1
        documents = [doc for doc in self.documents if doc.metadata["module"] in chosen]
        return _assemble(documents, self.chapters)

    def as_objects(self) -> list[dict[str, Any]]:
        """The documents as bucket objects ``{"key", "text", "metadata"}``."""
        return [_as_object(doc) for doc in self.documents]

    def as_references(self) -> list[dict[str, Any]]:
        """The chapter reference documents, in the same shape as :meth:`as_objects`."""
        return [_as_object(doc) for doc in self.references]


def build_corpus() -> Corpus:
    """Build the corpus from the docstrings of the modules in :data:`CHAPTERS` (uncached)."""
    candidates: list[CorpusDocument] = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for chapter, module_names in CHAPTERS:
            for module_name in sorted(module_names):
                try:
                    module = importlib.import_module(module_name)
                except ImportError:
                    continue
                candidates.extend(_module_documents(module, module_name, chapter))
    seen: set[str] = set()
    per_module: dict[str, int] = {}
    documents: list[CorpusDocument] = []
    for doc in sorted(candidates, key=_member_order):
        if doc.text in seen:
            continue
        seen.add(doc.text)
        if doc.metadata["kind"] != "module":
            module_name = doc.metadata["module"]
            if per_module.get(module_name, 0) >= MEMBERS_PER_MODULE:
                continue
            per_module[module_name] = per_module.get(module_name, 0) + 1
        documents.append(doc)
    return _assemble(documents, [chapter for chapter, _ in CHAPTERS])


@functools.lru_cache(maxsize=1)
def load_corpus() -> Corpus:
    """The corpus, built once per process (see :func:`build_corpus`)."""
    return build_corpus()


def evaluation_queries(corpus: Corpus) -> list[dict[str, Any]]:
    """The queries in the evaluation-set shape ``{"query_id", "inputs", "judgments"}``."""
    return [
        {
            "query_id": query.query_id,
            "inputs": {"query": query.text},
            "judgments": dict(query.judgments),
        }
        for query in corpus.queries
    ]


def evaluation_documents(corpus: Corpus) -> list[dict[str, Any]]:
    """The labelled documents in the evaluation-set shape.

    ``{"document_id", "text", "expected": {"chapter": label}}``.
    """
    return [
        {"document_id": item.key, "text": item.text, "expected": {"chapter": item.label}}
        for item in corpus.labelled
    ]


def chapter_slug(chapter: str) -> str:
    """``"Data Types"`` -> ``"data-types"``."""
    return re.sub(r"[^a-z0-9]+", "-", chapter.lower()).strip("-")


def summary(text: str) -> str:
    """The first sentence of a module document's text, at most :data:`MAX_SUMMARY` chars."""
    first = _SENTENCE_END.split(text, maxsplit=1)[0].strip()
    return _clip(first, MAX_SUMMARY)


def _member_order(doc: CorpusDocument) -> str:
    """Sort key: the qualified name, so a module's document precedes its members'."""
    return doc.key


def _module_documents(module: ModuleType, module_name: str, chapter: str) -> list[CorpusDocument]:
    """The module's own document (if it has a docstring) and all its eligible members."""
    documents: list[CorpusDocument] = []
    module_text = _first_paragraph(module.__doc__, MIN_MODULE_TEXT)
    if module_text is not None:
        documents.append(_document(module_name, module_text, module_name, chapter, "module"))
    for name, member in _public_members(module):
        text = _first_paragraph(member.__doc__, MIN_TEXT)
        if text is None:
            continue
        kind = "class" if inspect.isclass(member) else "function"
        documents.append(_document(f"{module_name}.{name}", text, module_name, chapter, kind))
    return documents


def _public_members(module: ModuleType) -> list[tuple[str, Any]]:
    """Public functions and classes the module exports (``__all__``) or defines, by name."""
    exported = getattr(module, "__all__", None)
    own = {module.__name__, "_" + module.__name__.rsplit(".", 1)[-1]}
    members: list[tuple[str, Any]] = []
    names = exported if exported is not None else dir(module)
    for name in sorted(set(names)):
        if name.startswith("_"):
            continue
        member = getattr(module, name, None)
        if not (inspect.isclass(member) or inspect.isroutine(member)):
            continue
        if exported is None and getattr(member, "__module__", None) not in own:
            continue
        members.append((name, member))
    return members


def _first_paragraph(doc: object, shortest: int) -> str | None:
    """The first descriptive paragraph of a docstring, whitespace collapsed, or ``None``."""
    if not isinstance(doc, str) or not doc.strip():
        return None
    for paragraph in re.split(r"\n\s*\n", inspect.cleandoc(doc)):
        text = _strip_signature(" ".join(paragraph.split()))
        if text:
            return _clip(text, MAX_TEXT) if len(text) >= shortest else None
    return None


def _strip_signature(text: str) -> str:
    """Drop leading call signatures; ``""`` when the paragraph is only signatures or code."""
    while True:
        signature = _SIGNATURE.match(text)
        if signature is None:
            return text
        after = _AFTER_SIGNATURE.match(text, signature.end())
        if after is None:
            # A signature followed by more code (``reader(...) for row in ...``).
            return ""
        text = text[after.end() :].strip()


def _clip(text: str, limit: int) -> str:
    """``text`` cut at a word boundary to at most ``limit`` characters."""
    if len(text) <= limit:
        return text
    cut = text[: limit - 3]
    if " " in cut:
        cut = cut[: cut.rindex(" ")]
    return cut.rstrip(" ,;:") + "..."


def _sentence(text: str) -> str:
    """``text`` ending in a full stop, so joined summaries read as separate sentences."""
    return text if text.endswith((".", "!", "?")) else text + "."


def _document(key: str, text: str, module: str, chapter: str, kind: str) -> CorpusDocument:
    metadata = {"key": key, "module": module, "chapter": chapter, "kind": kind}
    return CorpusDocument(key=key, text=text, metadata=metadata)


def _as_object(doc: CorpusDocument) -> dict[str, Any]:
    return {"key": doc.key, "text": doc.text, "metadata": dict(doc.metadata)}


def _assemble(documents: list[CorpusDocument], chapters: list[str]) -> Corpus:
    """Queries, references and labels derived from ``documents`` and their structure."""
    present = {doc.metadata["chapter"] for doc in documents}
    kept_chapters = [chapter for chapter in chapters if chapter in present]
    module_docs = {doc.key: doc for doc in documents if doc.metadata["kind"] == "module"}
    members: dict[str, list[CorpusDocument]] = {}
    for doc in documents:
        if doc.metadata["kind"] != "module":
            members.setdefault(doc.metadata["module"], []).append(doc)

    summaries = {name: summary(doc.text) for name, doc in sorted(module_docs.items())}
    queries = [
        Query(
            query_id=name,
            text=summaries[name],
            judgments={name: 2} | {doc.key: 1 for doc in members.get(name, [])},
        )
        for name in sorted(summaries)
        if len(members.get(name, [])) >= 2
    ]

    references = []
    for chapter in kept_chapters:
        chapter_summaries = [
            _sentence(summaries[name])
            for name in sorted(summaries)
            if module_docs[name].metadata["chapter"] == chapter
        ]
        key = f"chapter:{chapter_slug(chapter)}"
        references.append(
            CorpusDocument(
                key=key,
                text=" ".join([f"{chapter}.", *chapter_summaries]),
                metadata={"chapter": chapter, "key": key},
            )
        )

    labelled = [
        Labelled(key=doc.key, text=doc.text, label=doc.metadata["chapter"])
        for doc in documents
        if doc.metadata["kind"] != "module"
    ]
    return Corpus(
        documents=list(documents),
        queries=queries,
        references=references,
        labelled=labelled,
        chapters=kept_chapters,
    )
