"""A committed CloudFormation parameter file, made ready for `cfn-lint --parameter-files`.

Usage: cfn-params-for-lint.py TEMPLATE PARAMETER_FILE > for-lint.json

The files in deploy/cloudformation/params are what `aws cloudformation create-change-set
--parameters file://…` takes (scripts/deploy-stack.sh), so list parameters are comma-separated
strings there; cfn-lint wants arrays, so they are split here. A NoEcho parameter (a secret: the
database URL, the key ring) must never be in a committed file: found, it is an error; missing, it
gets a placeholder, because the deploy workflow supplies it from the environment's secrets. A key
the template does not declare is an error too.
"""

import json
import sys

from cfnlint.decode.decode import decode


def main():
    template, matches = decode(sys.argv[1])
    if template is None:
        sys.exit(f"{sys.argv[1]}: {matches}")
    declared = template.get("Parameters", {})
    path = sys.argv[2]
    entries = json.load(open(path))
    out = []
    for entry in entries:
        key, value = entry["ParameterKey"], entry["ParameterValue"]
        if key not in declared:
            sys.exit(f"{path}: {key} is not a parameter of {sys.argv[1]}")
        if declared[key].get("NoEcho"):
            sys.exit(f"{path}: {key} is a secret (NoEcho) and must not be in a committed file; "
                     "the deploy workflow passes it from the environment's secrets")
        kind = declared[key].get("Type", "String")
        if kind.startswith("List<") or kind == "CommaDelimitedList":
            value = [v.strip() for v in value.split(",")]
        out.append({"ParameterKey": key, "ParameterValue": value})
    for key, spec in declared.items():
        if spec.get("NoEcho") and not any(e["ParameterKey"] == key for e in out):
            out.append({"ParameterKey": key, "ParameterValue": "placeholder-secret"})
    json.dump(out, sys.stdout, indent=2)


main()
