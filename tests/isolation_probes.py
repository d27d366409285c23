"""Probes: every operation of the API, with B's identifier in each place one can go.

A probe is a request template with ``{ID}`` where the identifier goes; it is sent once
with B's identifier and once with a made-up one of the same shape. A probe marked
``clash`` names a namespace name, which is global: there is nothing to compare with, and
the answer must refuse the name without telling anything else of B.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from domain.ids import Kind, kind_of
from tests.tenants import GATE, OBJECTS, Names, Tenant, search_stage, taxonomy_config
from tests.test_auth import TEXT, Attempt, bearer, unique

ID = "{ID}"

# Refs the admin put in A's namespace, pointing into B's: A must not get through them.
INTO_B = {
    "namespace": "into-b-namespace",
    "collection": "into-b-collection",
    "retriever": "into-b-retriever",
    "taxonomy": "into-b-taxonomy",
}
# A retriever of A's whose search reads the collections its inputs name, at execution.
TEMPLATED = "templated-search"


def templated_retriever(n: Names) -> dict[str, Any]:
    search = {"query": "{{INPUT.query}}", "collection_ids": "{{INPUT.collections}}"}
    return {
        "retriever_name": TEMPLATED,
        "collection_identifiers": [n.collection],
        "stages": [
            {
                "stage_name": "search",
                "config": {"stage_id": "feature_search", "parameters": {"searches": [search]}},
            }
        ],
    }


@dataclass(frozen=True)
class Probe:
    position: str  # path.<parameter>, header.X-Namespace, query.<parameter>, body.<field>
    what: str
    identifier: str  # B's
    method: str
    path: str
    body: Any = None
    namespace: str | None = None  # X-Namespace
    params: dict[str, Any] | None = None
    clash: bool = False

    def request(self, key: str, identifier: str) -> Attempt:
        headers = bearer(key)
        if self.namespace is not None:
            headers["X-Namespace"] = _filled(self.namespace, identifier)
        return Attempt(
            self.what,
            self.method,
            _filled(self.path, identifier),
            headers,
            _filled(self.body, identifier),
            _filled(self.params, identifier),
        )


def _filled(value: Any, identifier: str) -> Any:
    if isinstance(value, str):
        return value.replace(ID, identifier)
    if isinstance(value, dict):
        return {k: _filled(v, identifier) for k, v in value.items()}
    if isinstance(value, list):
        return [_filled(v, identifier) for v in value]
    return value


def missing_like(identifier: str) -> str:
    """An identifier of the same shape that names nothing."""
    if kind_of(identifier) is not None:
        return f"{identifier.split('_', 1)[0]}_{uuid.uuid4().hex}"
    if identifier.startswith("ref:"):
        return f"ref:{unique('missing')}"
    return unique("missing")


@dataclass(frozen=True)
class Sides:
    """What the probes name: A's namespace and resources, B's, and the shared principal."""

    a: Tenant
    b: Tenant
    principal: str
    b_command_ids: frozenset[str]
    as_of: int  # a log position at which A's namespace holds all of its resources

    # --- probe families -----------------------------------------------------------------

    def in_x_namespace(self, method: str, path: str, body: Any = None) -> list[Probe]:
        """B's namespace and B's branch, by ID and by name, in X-Namespace."""
        b = self.b
        return [
            Probe("header.X-Namespace", f"B's {what} in X-Namespace", ident, method, path, body, ID)
            for what, ident in [
                ("namespace ID", b.ids["namespace"]),
                ("namespace name", b.names.namespace),
                ("branch ID", b.ids["branch"]),
                ("branch name", b.names.branch),
            ]
        ]

    def in_path(
        self, method: str, path: str, what: str, body: Any = None, via_ref: bool = False
    ) -> list[Probe]:
        """B's resource in the path: by name and ID through A's namespace, by name in B's, by
        a ref of A's pointing at it; and B's namespaces in X-Namespace."""
        at = "path.name" if path.startswith("/v1/refs/") else "path.identifier"
        name = self.b_name(what)
        na, nb = self.a.namespace_id, self.b.namespace_id
        probes = [
            Probe(at, f"B's {what} by name through A's namespace", name, method, path, body, na),
            Probe(at, f"B's {what} by name in B's namespace", name, method, path, body, nb),
            *self.in_x_namespace(method, path.replace(ID, name), body),
        ]
        if what in self.b.ids:  # refs have names only
            rid = self.b.ids[what]
            probes.append(
                Probe(at, f"B's {what} by ID through A's namespace", rid, method, path, body, na)
            )
        if via_ref:
            ref = f"ref:{INTO_B[what]}"
            probes.append(Probe(at, f"a ref of A's to B's {what}", ref, method, path, body, na))
        return probes

    def in_body(
        self, method: str, path: str, position: str, body: Any, whats: list[str]
    ) -> list[Probe]:
        """B's resources (by ID, by name, through a ref of A's) in one field of a body sent
        through A's namespace."""
        return [
            Probe(position, what, ident, method, path, body, self.a.namespace_id)
            for what, ident in self.b_identifiers(whats)
        ]

    def clashing(self, method: str, path: str) -> list[Probe]:
        b = self.b.names
        return [
            Probe(
                "body.namespace_name",
                f"B's {what} name",
                name,
                method,
                path,
                {"namespace_name": ID},
                clash=True,
            )
            for what, name in [("namespace", b.namespace), ("branch", b.branch)]
        ]

    def b_name(self, what: str) -> str:
        attribute = {"collection clone": "collection_clone", "evaluation set": "evaluation_set"}
        return str(getattr(self.b.names, attribute.get(what, what)))

    def b_identifiers(self, whats: list[str]) -> list[tuple[str, str]]:
        out = []
        for what in whats:
            out += [
                (f"B's {what} by ID", self.b.ids[what]),
                (f"B's {what} by name", self.b_name(what)),
            ]
            if what in INTO_B:
                out.append((f"a ref of A's to B's {what}", f"ref:{INTO_B[what]}"))
        return out

    # --- bodies naming other resources ----------------------------------------------------

    def references(self, method: str, path: str, plural: str, body: dict) -> list[Probe]:
        """B's resources in the fields of a create or clone body that name resources."""
        an = self.a.names
        probes: list[Probe] = []

        def field(position: str, changed: dict[str, Any], whats: list[str]) -> None:
            probes.extend(self.in_body(method, path, position, {**body, **changed}, whats))

        if plural == "collections":
            field(
                "body.source.bucket_ids",
                {"source": {"type": "bucket", "bucket_ids": [an.bucket, ID]}},
                ["bucket"],
            )
            field(
                "body.source.collection_id",
                {"source": {"type": "collection", "collection_id": ID}},
                ["collection"],
            )
        elif plural == "retrievers":
            field(
                "body.collection_identifiers",
                {"collection_identifiers": [an.collection, ID]},
                ["collection"],
            )
            field(
                "body.stages[].config.parameters.searches[].collection_ids",
                {"stages": [search_stage(ID)]},
                ["collection"],
            )
        elif plural == "taxonomies":
            flat = taxonomy_config(an.retriever, an.collection)
            field(
                "body.config.retriever_id", {"config": {**flat, "retriever_id": ID}}, ["retriever"]
            )
            field(
                "body.config.source_collection.collection_id",
                {"config": {**flat, "source_collection": {"collection_id": ID}}},
                ["collection"],
            )
            for node, key, what in [
                (0, "collection_id", "collection"),
                (1, "parent_collection_id", "collection"),
                (1, "retriever_id", "retriever"),
            ]:
                nodes: list[dict[str, Any]] = [
                    {"collection_id": an.collection, "retriever_id": an.retriever},
                    {
                        "collection_id": an.collection_clone,
                        "parent_collection_id": an.collection,
                        "retriever_id": an.retriever,
                    },
                ]
                nodes[node][key] = ID
                tree = {"taxonomy_type": "hierarchical", "hierarchical_nodes": nodes}
                field(f"body.config.hierarchical_nodes[].{key}", {"config": tree}, [what])
        return probes

    def resources(self, plural: str) -> dict[str, list[Probe]]:
        """Create, list, get, update and clone of one kind."""
        what = SINGULAR[plural]
        base, via_ref = f"/v1/{plural}", what != "bucket"
        create = CREATE_BODY[plural](self.a.names)
        probes = {
            f"POST {base}": [
                *self.in_x_namespace("POST", base, create),
                *self.references("POST", base, plural, create),
            ],
            f"POST {base}/list": self.in_x_namespace("POST", f"{base}/list", {"limit": 100}),
            f"GET {base}/{{identifier}}": self.in_path("GET", f"{base}/{ID}", what, None, via_ref),
            f"PATCH {base}/{{identifier}}": self.in_path(
                "PATCH", f"{base}/{ID}", what, {"description": "pwned"}, via_ref
            ),
            f"DELETE {base}/{{identifier}}": self.in_path(
                "DELETE", f"{base}/{ID}", what, None, via_ref
            ),
        }
        if what == "bucket":
            return probes
        clone = {f"{what}_name": unique("stolen")}
        own = f"{base}/{getattr(self.a.names, what)}/clone"
        probes[f"POST {base}/{{identifier}}/clone"] = [
            *self.in_path("POST", f"{base}/{ID}/clone", what, clone, via_ref),
            *self.references("POST", own, plural, clone),
        ]
        if what == "collection":  # a clone as of a position resolves its source in the domain
            as_of = {**clone, "as_of_position": self.as_of}
            probes[f"POST {base}/{{identifier}}/clone"] += [
                p
                for p in self.in_path("POST", f"{base}/{ID}/clone", what, as_of, via_ref)
                if p.position == "path.identifier"
            ]
        return probes


SINGULAR = {
    "buckets": "bucket",
    "collections": "collection",
    "retrievers": "retriever",
    "taxonomies": "taxonomy",
}
CREATE_BODY: dict[str, Callable[[Names], dict[str, Any]]] = {
    "buckets": lambda n: {"bucket_name": unique("x"), "bucket_schema": {"properties": {}}},
    "collections": lambda n: {
        "collection_name": unique("x"),
        "source": {"type": "bucket", "bucket_ids": [n.bucket]},
        "feature_extractor": TEXT,
    },
    "retrievers": lambda n: {
        "retriever_name": unique("x"),
        "collection_identifiers": [n.collection],
        "stages": [search_stage(n.collection)],
    },
    "taxonomies": lambda n: {
        "taxonomy_name": unique("x"),
        "config": taxonomy_config(n.retriever, n.collection),
    },
}


def probes_of(s: Sides) -> dict[str, list[Probe]]:
    """Every operation of the API -> its probes; an empty list: it takes no identifier."""
    a, b = s.a, s.b
    an: Names = a.names
    na = a.namespace_id
    lineage = (Kind.NAMESPACE, Kind.BUCKET, Kind.COLLECTION, Kind.RETRIEVER, Kind.TAXONOMY)
    # (not the namespace B deleted: there is nothing to read of it, for anyone)
    reads = [
        w
        for w, i in b.ids.items()
        if kind_of(i) in (*lineage, Kind.EVALUATION_SET) and w != "doomed namespace"
    ]
    namespaces = [
        ("namespace by ID", b.ids["namespace"]),
        ("namespace by name", b.names.namespace),
        ("branch by ID", b.ids["branch"]),
        ("branch by name", b.names.branch),
    ]
    promote = {"candidate": an.retriever, "evaluation_set": an.evaluation_set, "gate": GATE}
    evaluate = {"evaluation_set": an.evaluation_set, "candidate": an.retriever}
    judged = [{"query_id": "q", "inputs": {"query": "x"}, "judgments": {"k1": 1}}]
    evaluation_set = {
        "evaluation_set_name": unique("x"),
        "set_type": "retriever",
        "queries": judged,
    }

    def at_namespace(method: str, path: str, body: Any = None) -> list[Probe]:
        return [
            Probe("path.identifier", f"B's {what}", ident, method, path, body)
            for what, ident in namespaces
        ]

    def ref_targets() -> list[Probe]:
        body = {"ref_name": unique("r"), "target_kind": "namespace", "target": ID}
        probes = [
            Probe("body.target", f"B's {what}", ident, "POST", "/v1/refs", body, na)
            for what, ident in namespaces
        ]
        for kind in ("collection", "retriever", "taxonomy"):
            kind_body = {**body, "target_kind": kind}
            probes += s.in_body("POST", "/v1/refs", "body.target", kind_body, [kind])
        return probes

    def diff(side: str, ours: str, theirs: str, what: str) -> Probe:
        params = {"from": ID, "to": ours} if side == "from" else {"from": ours, "to": ID}
        return Probe(f"query.{side}", f"B's {what}", theirs, "GET", "/v1/diff", params=params)

    probes: dict[str, list[Probe]] = {
        "POST /v1/namespaces": s.clashing("POST", "/v1/namespaces"),
        "GET /v1/namespaces/{identifier}": at_namespace("GET", f"/v1/namespaces/{ID}"),
        "PATCH /v1/namespaces/{identifier}": [
            *at_namespace("PATCH", f"/v1/namespaces/{ID}", {"description": "pwned"}),
            *s.clashing("PATCH", f"/v1/namespaces/{na}"),
        ],
        "POST /v1/namespaces/list": [],
        "DELETE /v1/namespaces/{identifier}": at_namespace("DELETE", f"/v1/namespaces/{ID}"),
        "GET /v1/namespaces": [],  # lists are scoped by the key: no identifier to probe
        "POST /v1/tasks/list": [],
        "POST /v1/namespaces/{identifier}/clone": [
            *at_namespace(
                "POST", f"/v1/namespaces/{ID}/clone", {"namespace_name": unique("stolen")}
            ),
            *s.clashing("POST", f"/v1/namespaces/{na}/clone"),
        ],
        "GET /v1/tasks/{task_id}": [
            Probe("path.task_id", f"B's {w}", b.ids[w], "GET", f"/v1/tasks/{ID}")
            for w in ("clone task", "apply task", "reprocess task")
        ],
        "GET /v1/lineage/{identifier}": [
            Probe("path.identifier", f"B's {w}", b.ids[w], "GET", f"/v1/lineage/{ID}")
            for w in reads
        ],
        "GET /v1/audit": [
            *(
                Probe(
                    "query.resource_id",
                    f"B's {w}",
                    i,
                    "GET",
                    "/v1/audit",
                    params={"resource_id": ID},
                )
                for w, i in b.ids.items()
            ),
            *(
                Probe(
                    "query.command_id",
                    "B's command",
                    i,
                    "GET",
                    "/v1/audit",
                    params={"command_id": ID},
                )
                for i in sorted(s.b_command_ids)
            ),
        ],
        "POST /v1/keys": [
            Probe(
                "body.namespaces",
                f"B's {w}",
                i,
                "POST",
                "/v1/keys",
                {"principal": s.principal, "namespaces": [ID]},
            )
            for w, i in namespaces
        ],
        "POST /v1/buckets/{identifier}/objects": s.in_path(
            "POST", f"/v1/buckets/{ID}/objects", "bucket", {"objects": OBJECTS[:1]}
        ),
        "POST /v1/collections/{identifier}/documents": s.in_path(
            "POST",
            f"/v1/collections/{ID}/documents",
            "collection",
            {"documents": [{"text": "x"}]},
            True,
        ),
        "POST /v1/collections/{identifier}/documents/delete": s.in_path(
            "POST",
            f"/v1/collections/{ID}/documents/delete",
            "collection",
            {"document_ids": ["d1"]},
            True,
        ),
        "GET /v1/collections/{identifier}/index": s.in_path(
            "GET", f"/v1/collections/{ID}/index", "collection", None, True
        ),
        "POST /v1/collections/{identifier}/trigger": s.in_path(
            "POST", f"/v1/collections/{ID}/trigger", "collection", None, True
        ),
        "POST /v1/collections/{identifier}/apply-taxonomy": [
            *s.in_path(
                "POST",
                f"/v1/collections/{ID}/apply-taxonomy",
                "collection",
                {"taxonomy_identifier": an.taxonomy},
                True,
            ),
            *s.in_body(
                "POST",
                f"/v1/collections/{an.collection_clone}/apply-taxonomy",
                "body.taxonomy_identifier",
                {"taxonomy_identifier": ID},
                ["taxonomy"],
            ),
            *s.in_body(  # Mixpeek's name for it
                "POST",
                f"/v1/collections/{an.collection_clone}/apply-taxonomy",
                "body.taxonomy_id",
                {"taxonomy_id": ID},
                ["taxonomy"],
            ),
        ],
        "POST /v1/retrievers/{identifier}/execute": [
            *s.in_path(
                "POST",
                f"/v1/retrievers/{ID}/execute",
                "retriever",
                {"inputs": {"query": "x"}},
                True,
            ),
            *s.in_body(
                "POST",
                f"/v1/retrievers/{TEMPLATED}/execute",
                "body.inputs (a stage's collection_ids)",
                {"inputs": {"query": "heap", "collections": [ID]}},
                ["collection"],
            ),
        ],
        "POST /v1/taxonomies/{identifier}/classify": s.in_path(
            "POST",
            f"/v1/taxonomies/{ID}/classify",
            "taxonomy",
            {"documents": [{"text": "heap"}]},
            True,
        ),
        "POST /v1/taxonomies/{identifier}/execute": s.in_path(
            "POST",
            f"/v1/taxonomies/{ID}/execute",
            "taxonomy",
            {"source_documents": [{"text": "heap"}]},
            True,
        ),
        "POST /v1/refs": [
            *s.in_x_namespace(
                "POST",
                "/v1/refs",
                {"ref_name": unique("r"), "target_kind": "retriever", "target": an.retriever},
            ),
            *ref_targets(),
        ],
        "GET /v1/refs/{name}": s.in_path("GET", f"/v1/refs/{ID}", "ref"),
        "POST /v1/refs/list": s.in_x_namespace("POST", "/v1/refs/list", {"limit": 100}),
        "POST /v1/refs/{name}/move": [
            *s.in_path("POST", f"/v1/refs/{ID}/move", "ref", {"target": an.retriever}),
            *s.in_body(
                "POST", f"/v1/refs/{an.ref}/move", "body.target", {"target": ID}, ["retriever"]
            ),
        ],
        "POST /v1/refs/{name}/rollback": s.in_path(
            "POST", f"/v1/refs/{ID}/rollback", "ref", {"to": "previous"}
        ),
        "POST /v1/refs/{name}/promote": [
            *s.in_path("POST", f"/v1/refs/{ID}/promote", "ref", promote),
            *s.in_body(
                "POST",
                f"/v1/refs/{an.ref}/promote",
                "body.candidate",
                {**promote, "candidate": ID},
                ["retriever"],
            ),
            *s.in_body(
                "POST",
                f"/v1/refs/{an.ref}/promote",
                "body.evaluation_set",
                {**promote, "evaluation_set": ID},
                ["evaluation set"],
            ),
        ],
        "POST /v1/evaluation_sets": s.in_x_namespace("POST", "/v1/evaluation_sets", evaluation_set),
        "GET /v1/evaluation_sets/{identifier}": s.in_path(
            "GET", f"/v1/evaluation_sets/{ID}", "evaluation set"
        ),
        "POST /v1/evaluations": [
            *s.in_x_namespace("POST", "/v1/evaluations", evaluate),
            *s.in_body(
                "POST",
                "/v1/evaluations",
                "body.evaluation_set",
                {**evaluate, "evaluation_set": ID},
                ["evaluation set"],
            ),
            *s.in_body(
                "POST",
                "/v1/evaluations",
                "body.candidate",
                {**evaluate, "candidate": ID},
                ["retriever"],
            ),
            *s.in_body(
                "POST",
                "/v1/evaluations",
                "body.baseline",
                {**evaluate, "baseline": ID},
                ["retriever"],
            ),
        ],
        "GET /v1/evaluations/{evaluation_id}": [
            Probe(
                "path.evaluation_id",
                "B's evaluation",
                b.ids["evaluation"],
                "GET",
                f"/v1/evaluations/{ID}",
            )
        ],
        "GET /v1/diff": [
            diff(side, ours, theirs, what)
            for what, ours, theirs in [
                ("namespace by ID", na, b.ids["namespace"]),
                ("namespace by name", an.namespace, b.names.namespace),
                ("branch", na, b.ids["branch"]),
                *(
                    (w, a.ids[w], b.ids[w])
                    for w in ("bucket", "collection", "retriever", "taxonomy")
                ),
            ]
            for side in ("from", "to")
        ],
        "POST /v1/checkpoints": [],
        "GET /v1/dlq": [],  # admin keys only (tests/test_dead_letters.py)
        "POST /v1/dlq/redrive": [],
        "GET /v1/health": [],
        "GET /v1/health/live": [],
        "GET /v1/health/ready": [],
    }
    for plural in SINGULAR:
        probes.update(s.resources(plural))
    return probes
