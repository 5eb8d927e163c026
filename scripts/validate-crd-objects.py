"""Validate custom resources (KEDA ScaledObject, TriggerAuthentication) against their CRDs' schemas.

Usage: validate-crd-objects.py CRD.yaml [CRD.yaml ...] -- MANIFEST.yaml [...]

Each object whose apiVersion/kind a CRD defines is checked against that version's
openAPIV3Schema, strictly: like the API server's strict field validation, a field the schema
does not declare is an error (unless the schema preserves unknown fields). Objects of other kinds
are skipped (kubernetes-validate checks the core ones). Exit 1 on any error, one line each.
"""

import sys

import jsonschema
from ruamel.yaml import YAML


def strict(schema):
    """Forbid undeclared properties wherever the schema declares its properties."""
    if isinstance(schema, dict):
        if "properties" in schema and not schema.get("x-kubernetes-preserve-unknown-fields"):
            schema.setdefault("additionalProperties", False)
        for value in schema.values():
            strict(value)
    elif isinstance(schema, list):
        for value in schema:
            strict(value)
    return schema


def main(argv):
    split = argv.index("--")
    crd_files, manifests = argv[:split], argv[split + 1:]
    yaml = YAML(typ="safe")
    schemas = {}
    for path in crd_files:
        with open(path, encoding="utf-8") as f:
            for crd in yaml.load_all(f):
                group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
                for version in crd["spec"]["versions"]:
                    schema = strict(version["schema"]["openAPIV3Schema"])
                    schemas[(f"{group}/{version['name']}", kind)] = schema
    errors = checked = 0
    for path in manifests:
        with open(path, encoding="utf-8") as f:
            for doc in yaml.load_all(f):
                if not doc:
                    continue
                key = (doc.get("apiVersion"), doc.get("kind"))
                if key not in schemas:
                    continue
                checked += 1
                name = f"{path}: {key[1]} {doc.get('metadata', {}).get('name')}"
                validator = jsonschema.Draft7Validator(schemas[key])
                problems = sorted(validator.iter_errors(doc), key=lambda e: list(e.path))
                for problem in problems:
                    where = ".".join(str(p) for p in problem.path) or "(root)"
                    print(f"FAIL {name}: {where}: {problem.message}")
                    errors += 1
                if not problems:
                    print(f"ok   {name} against its CRD schema")
    if checked == 0:
        print("FAIL no object of a kind these CRDs define was found")
        return 1
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
