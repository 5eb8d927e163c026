"""The permission rules of the deployment files that schemas and linters cannot see.

Usage: check-policies.py --templates CFN.yaml... --workflows WORKFLOW.yml... --release RELEASE.yml

Each broken rule is one line `RULE FILE: what and where`; exit 1 if any, 2 if a file cannot be
read. scripts/validate-deploy.sh runs it on the real files and shows it one broken copy per rule,
which must be refused with that rule's name (docs/security.md "Who can do what").

  kms-create-grant   a KMS key policy statement allowing kms:CreateGrant (kms:Create*, kms:*, *,
                     NotAction) without a kms:GrantIsForAWSResource condition: with a grant,
                     its holder gives anyone Decrypt without the encryption context.
  kms-decrypt-context  a KMS key policy statement allowing kms:Decrypt without requiring
                     kms:EncryptionContext:service (login-etl's data keys only).
  role-actions       a role of ROLES allowing an action outside its list (wildcards included), a
                     managed or attached policy, Decrypt without the encryption context, or the
                     role missing from the templates.
  action-pin         a workflow's `uses:` not pinned by a 40-hex commit with `# vX…` after it.
  release-tags-only  release.yml triggered by anything but a push of tags.
  role-input         a workflow's role-to-assume taken from an input.
"""

import argparse
import fnmatch
import json
import re
import sys

from cfnlint.decode.decode import decode
from ruamel.yaml import YAML

# Logical id -> the only actions its policies may allow (deploy/cloudformation/*.yaml).
ROLES = {
    "OperatorRole": {"kms:decrypt"},
    "KedaScalerRole": {"sqs:getqueueattributes"},
    "TaskRole": {"sqs:receivemessage", "sqs:deletemessage", "sqs:changemessagevisibility",
                 "sqs:getqueueattributes", "sqs:getqueueurl", "sqs:sendmessage", "kms:decrypt",
                 # Objects S3 notifications name (HistoryBucketNames), never any bucket.
                 "s3:getobject", "s3:getobjectversion", "s3:listbucket"},
}
CONTEXT_KEY = "kms:encryptioncontext:service"
PIN = re.compile(r"^[^@\s]+@[0-9a-f]{40}$")
USES = re.compile(r"^\s*(?:-\s+)?uses:\s*(['\"]?)([^'\"\s#]+)\1\s*(#\s*(\S+))?")

problems = []


def report(rule, path, message):
    problems.append(f"{rule} {path}: {message}")


def branches(value):
    """Every concrete form of a value: both sides of Fn::If, nothing for AWS::NoValue."""
    if isinstance(value, dict) and set(value) == {"Fn::If"}:
        _, yes, no = value["Fn::If"]
        return branches(yes) + branches(no)
    if isinstance(value, dict) and value == {"Ref": "AWS::NoValue"}:
        return []
    return [value]


def as_list(value):
    out = []
    for item in branches(value):
        if isinstance(item, list):
            for element in item:
                out.extend(branches(element))
        else:
            out.append(item)
    return out


def document(value):
    """A policy document: a mapping, a JSON string, or a Fn::Sub of one (placeholders kept)."""
    if isinstance(value, dict) and "Fn::Sub" in value:
        text = value["Fn::Sub"]
        value = text[0] if isinstance(text, list) else text
    if isinstance(value, str):
        return json.loads(value)
    return value


def statements(doc):
    return [s for s in as_list(document(doc).get("Statement", [])) if isinstance(s, dict)]


def actions(statement):
    """(allowed patterns, excluded patterns) in lower case; a non-literal action is a '*'."""
    def literal(items):
        return [a.lower() if isinstance(a, str) else "*" for a in items]
    if "NotAction" in statement:
        return ["*"], literal(as_list(statement["NotAction"]))
    return literal(as_list(statement.get("Action", []))), []


def allows(statement, action):
    included, excluded = actions(statement)
    return (any(fnmatch.fnmatchcase(action, p) for p in included)
            and not any(fnmatch.fnmatchcase(action, p) for p in excluded))


def condition_values(statement, key):
    """Values required for a condition key (operators ending in IfExists require nothing)."""
    values = []
    for operator, block in (statement.get("Condition") or {}).items():
        if operator.lower().endswith("ifexists") or not isinstance(block, dict):
            continue
        for name, value in block.items():
            if name.lower() == key:
                values.extend(str(v).lower() for v in as_list(value))
    return values


def has_context(statement):
    return "login-etl" in condition_values(statement, CONTEXT_KEY)


def check_key_policy(path, name, policy):
    for i, statement in enumerate(statements(policy)):
        if statement.get("Effect") != "Allow":
            continue
        where = f"{name} statement {statement.get('Sid', i)}"
        if allows(statement, "kms:creategrant") and \
                "true" not in condition_values(statement, "kms:grantisforawsresource"):
            report("kms-create-grant", path, f"{where} allows kms:CreateGrant without "
                   "kms:GrantIsForAWSResource: list the administrators' actions one by one")
        if allows(statement, "kms:decrypt") and not has_context(statement):
            report("kms-decrypt-context", path, f"{where} allows kms:Decrypt without "
                   "kms:EncryptionContext:service = login-etl")


def role_statements(resources, logical):
    """The Allow statements of a role's inline policies and of policies attached to it."""
    role = resources[logical]["Properties"]
    found = [s for p in as_list(role.get("Policies", [])) for s in statements(p["PolicyDocument"])]
    for other in resources.values():
        if other.get("Type") in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy", "AWS::IAM::RolePolicy"):
            props = other.get("Properties", {})
            targets = as_list(props.get("Roles", [])) + as_list(props.get("RoleName", []))
            if {"Ref": logical} in targets:
                found.extend(statements(props["PolicyDocument"]))
    return [s for s in found if s.get("Effect") == "Allow"]


def check_role(path, resources, logical):
    allowed = ROLES[logical]
    role = resources[logical].get("Properties", {})
    if role.get("ManagedPolicyArns"):
        report("role-actions", path, f"{logical} has managed policies; it may only {sorted(allowed)}")
    for resource in resources.values():
        if resource.get("Type") == "AWS::IAM::ManagedPolicy" and \
                {"Ref": logical} in as_list(resource.get("Properties", {}).get("Roles", [])):
            report("role-actions", path, f"{logical} has a managed policy attached")
    for statement in role_statements(resources, logical):
        included, excluded = actions(statement)
        extra = sorted(set(included) - allowed) + [f"NotAction {e}" for e in excluded]
        if extra:
            report("role-actions", path, f"{logical} allows {', '.join(extra)}; "
                   f"it may only {', '.join(sorted(allowed))}")
        if any(a.startswith("s3:") for a in included) and \
                any(r in ("*", "arn:aws:s3:::*", "arn:aws:s3:::*/*") for r in as_list(statement.get("Resource", []))):
            report("role-actions", path, f"{logical} reads S3 beyond the configured buckets")
        if "kms:decrypt" in included and not has_context(statement):
            report("role-actions", path, f"{logical} decrypts without "
                   "kms:EncryptionContext:service = login-etl")


def check_templates(paths):
    seen = set()
    for path in paths:
        template, matches = decode(path)
        if template is None:
            sys.stderr.write(f"{path}: {matches}\n")
            sys.exit(2)
        resources = template.get("Resources", {})
        for logical, resource in resources.items():
            if resource.get("Type") == "AWS::KMS::Key":
                check_key_policy(path, logical, resource["Properties"]["KeyPolicy"])
            if logical in ROLES and resource.get("Type") == "AWS::IAM::Role":
                seen.add(logical)
                check_role(path, resources, logical)
    for logical in sorted(set(ROLES) - seen):
        report("role-actions", " ".join(paths), f"no role {logical}: its rule checks nothing")


def check_workflows(paths):
    for path in paths:
        with open(path) as f:
            for number, line in enumerate(f, 1):
                match = USES.match(line)
                if match and not match.group(2).startswith(("./", "docker://")):
                    if not PIN.match(match.group(2)) or not (match.group(4) or "").startswith("v"):
                        report("action-pin", f"{path}:{number}", f"{match.group(2)} is not pinned "
                               "as owner/repo@<40-hex commit> # vX.Y.Z")
                if re.search(r"role-to-assume:.*\b(inputs|github\.event\.inputs)\.", line):
                    report("role-input", f"{path}:{number}", "the role to assume comes from an "
                           "input: use the environment's or repository's variable")


def check_release(path):
    with open(path) as f:
        workflow = YAML(typ="safe").load(f)
    triggers = workflow.get("on")
    push = triggers.get("push") if isinstance(triggers, dict) else None
    if not isinstance(triggers, dict) or set(triggers) != {"push"} or not isinstance(push, dict) \
            or set(push) != {"tags"}:
        report("release-tags-only", path, f"triggered by {json.dumps(triggers)}: a release runs "
               "on a push of version tags only (on: push: tags: [...])")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--templates", nargs="+", required=True)
    parser.add_argument("--workflows", nargs="+", required=True)
    parser.add_argument("--release", required=True)
    args = parser.parse_args()
    check_templates(args.templates)
    check_workflows(args.workflows)
    check_release(args.release)
    for problem in problems:
        print(problem)
    sys.exit(1 if problems else 0)


main()
