#!/usr/bin/env bash
# Deploy one of login-etl's CloudFormation stacks through a change set: create it, print what it
# changes, execute it, wait. Run by .github/workflows/deploy.yml; works by hand with AWS
# credentials and the aws CLI.
# Usage: ENVIRONMENT=dev|staging|prod scripts/deploy-stack.sh queue-and-key|access|service|ci STACK_NAME
#   parameters: deploy/cloudformation/params/$ENVIRONMENT-<template>.json
#   CFN_ROLE_ARN (if set): the role CloudFormation deploys with (ci.yaml's CloudFormationRole; the
#   deploy workflow's role may create change sets only with it). `ci` is deployed by an
#   administrator, without it: CI never changes its own trust.
#   service stack: IMAGE_TAG (if set) replaces the image's tag; DATABASE_URL and MASK_KEY_RING
#   (if set) are the secrets, else the stack keeps their previous values (they are required the
#   first time). Secrets never touch a file of the repository.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
[ $# -eq 2 ] || die "usage: ENVIRONMENT=dev|staging|prod $0 queue-and-key|access|service|ci STACK_NAME"
template=$1 stack=$2
case "$template" in queue-and-key|access|service|ci) ;; *) die "unknown template: $template" ;; esac
role=()
if [ -n "${CFN_ROLE_ARN:-}" ]; then
  [ "$template" != ci ] || die "deploy ci.yaml as an administrator, without CFN_ROLE_ARN"
  role=(--role-arn "$CFN_ROLE_ARN")
fi
environment=${ENVIRONMENT:?set ENVIRONMENT to dev, staging or prod}
params=$root/deploy/cloudformation/params/$environment-$template.json
[ -f "$params" ] || die "no parameter file $params"
command -v aws >/dev/null || die "the aws CLI is required"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

if aws cloudformation describe-stacks --stack-name "$stack" >/dev/null 2>&1; then type=UPDATE; else type=CREATE; fi
# The committed parameters, the image tag, and the secrets (or "keep the previous value").
python3 - "$params" "$type" >"$work/params.json" <<'PY'
import json, os, sys
params = json.load(open(sys.argv[1]))
tag = os.environ.get("IMAGE_TAG")
for p in params:
    if p["ParameterKey"] == "Image" and tag:
        p["ParameterValue"] = p["ParameterValue"].rsplit(":", 1)[0] + ":" + tag
if "Image" in {p["ParameterKey"] for p in params}:
    for key, env in (("DatabaseUrl", "DATABASE_URL"), ("MaskKeyRing", "MASK_KEY_RING")):
        if os.environ.get(env):
            params.append({"ParameterKey": key, "ParameterValue": os.environ[env]})
        elif sys.argv[2] == "UPDATE":
            params.append({"ParameterKey": key, "UsePreviousValue": True})
        else:
            sys.exit(f"{env} is required to create the service stack")
json.dump(params, sys.stdout)
PY
name=deploy-$(date -u +%Y%m%d%H%M%S)
say "$type $stack ($environment) with change set $name"
aws cloudformation create-change-set --stack-name "$stack" --change-set-name "$name" \
  --change-set-type "$type" --template-body "file://$root/deploy/cloudformation/$template.yaml" \
  --parameters "file://$work/params.json" --capabilities CAPABILITY_NAMED_IAM "${role[@]}" >/dev/null
if ! aws cloudformation wait change-set-create-complete --stack-name "$stack" --change-set-name "$name"; then
  reason=$(aws cloudformation describe-change-set --stack-name "$stack" --change-set-name "$name" \
    --query StatusReason --output text)
  case "$reason" in
    *"didn't contain changes"*|*"No updates"*) say "no changes"; exit 0 ;;
    *) die "change set failed: $reason" ;;
  esac
fi
aws cloudformation describe-change-set --stack-name "$stack" --change-set-name "$name" \
  --query 'Changes[].ResourceChange.[Action,LogicalResourceId,ResourceType,Replacement]' --output table
aws cloudformation execute-change-set --stack-name "$stack" --change-set-name "$name"
if [ "$type" = CREATE ]; then
  aws cloudformation wait stack-create-complete --stack-name "$stack"
else
  aws cloudformation wait stack-update-complete --stack-name "$stack"
fi
say "$stack is up to date"
