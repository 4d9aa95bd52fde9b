#!/usr/bin/env bash
# tests/k8s/test_helm.sh: checks of the Helm chart helm/vigil.
#
#   test_helm.sh lint     helm lint --strict (default and all-features values)
#                         and the README's values table against values.yaml
#   test_helm.sh render   helm template + tests/k8s/validate (strict decoding
#                         against the Kubernetes API types and the chart's
#                         promises), values that must refuse to render, and
#                         broken manifests the validator must reject
#
# Environment: VIGIL_SOURCE_DIR (repository), VIGIL_BINARY (vigil, for
# `vigil rules check` on the rendered rules). Helm comes from .deps/bin/helm
# and Go from PATH or /usr/local/go/bin, both installed by scripts/setup-helm;
# a missing tool is a failure, never a skip.
set -uo pipefail

src=${VIGIL_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}
chart=$src/helm/vigil
all_values=$chart/ci/all-features-values.yaml
helm=$src/.deps/bin/helm
mode=${1:-}

passed=0
failed=0
ok() { passed=$((passed + 1)); echo "ok: $*"; }
bad() { failed=$((failed + 1)); echo "FAIL: $*"; }
finish() {
  echo "$passed passed, $failed failed"
  [ "$failed" = 0 ]
  exit
}

if [ ! -x "$helm" ]; then
  echo "FAIL: helm not found at $helm: run scripts/setup-helm (scripts/setup does)"
  echo "0 passed, 1 failed"
  exit 1
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# A fixed Kubernetes version: rendering does not depend on how helm was built.
kube=(--kube-version 1.30.0)

case "$mode" in
lint)
  if out=$("$helm" lint --strict "$chart" 2>&1); then ok "helm lint --strict (default values)"
  else bad "helm lint --strict (default values):"$'\n'"$out"; fi
  if out=$("$helm" lint --strict "$chart" -f "$all_values" 2>&1); then ok "helm lint --strict (all features)"
  else bad "helm lint --strict (all features):"$'\n'"$out"; fi

  # Every value in values.yaml has a row in the README's table, and every
  # row names a real value.
  if out=$(/usr/bin/python3 - "$chart" <<'EOF' 2>&1
import re, sys, yaml
chart = sys.argv[1]
values = yaml.safe_load(open(chart + "/values.yaml"))
def leaves(d, prefix=""):
    for k, v in d.items():
        p = prefix + k
        if isinstance(v, dict) and v:
            yield from leaves(v, p + ".")
        else:
            yield p
keys = set(leaves(values))
readme = open(chart + "/README.md").read()
rows = set(re.findall(r"^\| `([^`]+)` \|", readme, re.M))
missing = sorted(keys - rows)
stale = sorted(rows - keys)
if missing or stale:
    print("not in the README table:", missing, "\nin the table but not in values.yaml:", stale)
    sys.exit(1)
print(f"{len(keys)} values documented")
EOF
  ); then ok "README values table matches values.yaml ($out)"
  else bad "README values table: $out"; fi
  finish
  ;;
render) ;;
*)
  echo "usage: test_helm.sh lint|render" >&2
  exit 2
  ;;
esac

# --- render ------------------------------------------------------------------
go=$(command -v go || true)
[ -n "$go" ] || go=/usr/local/go/bin/go
if [ ! -x "$go" ]; then
  echo "FAIL: Go not found on PATH or at /usr/local/go/bin/go (scripts/setup-helm needs it)"
  echo "0 passed, 1 failed"
  exit 1
fi
# Compiles in a second or two from Go's build cache (scripts/setup-helm warms it).
validate=$tmp/vigil-k8s-validate
if ! out=$(cd "$src/tests/k8s/validate" && GOTOOLCHAIN=local GOFLAGS=-buildvcs=false "$go" build -o "$validate" . 2>&1); then
  echo "FAIL: could not build tests/k8s/validate:"$'\n'"$out"
  echo "0 passed, 1 failed"
  exit 1
fi
vigil_args=()
if [ -n "${VIGIL_BINARY:-}" ]; then vigil_args=(-vigil "$VIGIL_BINARY"); fi

# render NAME [helm args...]: helm template into $tmp/NAME.yaml.
render() {
  local name=$1; shift
  "$helm" template vigil "$chart" "${kube[@]}" "$@" > "$tmp/$name.yaml" 2> "$tmp/$name.err"
}

# valid NAME VALIDATOR-ARGS -- HELM-ARGS: renders and validates.
valid() {
  local name=$1; shift
  local vargs=()
  while [ $# -gt 0 ] && [ "$1" != -- ]; do vargs+=("$1"); shift; done
  shift
  if ! render "$name" "$@"; then
    bad "$name: helm template failed: $(cat "$tmp/$name.err")"
    return
  fi
  if out=$("$validate" -f "$tmp/$name.yaml" "${vigil_args[@]}" "${vargs[@]}" 2>&1); then
    ok "$name: $(echo "$out" | tail -1) (validator checks)"
  else
    bad "$name: validator:"$'\n'"$out"
  fi
}

# -secret-files: with secrets.mode files (the default) no env var of any
# container may come from a Secret: every credential is a mounted file.
valid default -secret-files -- 
valid all-features -secret-files -expect ScaledObject,ServiceMonitor,NetworkPolicy,PodDisruptionBudget,HorizontalPodAutoscaler,Job,Service,ServiceAccount,Ingress -- -f "$all_values"
valid secrets-as-env -- -f "$all_values" --set secrets.mode=env
valid no-autoscaling -secret-files -- --set worker.autoscaling.enabled=false --set worker.replicas=12
valid external-rules -secret-files -- --set rules.existingConfigMap=study-rules
valid mllp-plain -secret-files -expect Service,PodDisruptionBudget -- --set mllp.enabled=true
valid console-off -secret-files -- --set console.enabled=false -f "$all_values"
valid console-fixed-replicas -secret-files -expect Ingress -- --set console.autoscaling.enabled=false \
  --set console.ingress.enabled=true --set console.ingress.host=vigil.example.org --set console.ingress.tls.secretName=vigil-tls

# The console is on by default (Deployment, Service, PDB, HPA) and off when
# console.enabled=false, leaving nothing of it behind.
if grep -q 'component: console' "$tmp/default.yaml" &&
   [ "$(grep -c '^# Source: vigil/templates/console-' "$tmp/default.yaml")" = 4 ] &&
   ! grep -q 'component: console' "$tmp/console-off.yaml" &&
   ! grep -q 'VIGIL_LINK_KEYS_FILE' "$tmp/console-off.yaml"; then
  ok "console: Deployment, Service, PDB and HPA by default, nothing of it with console.enabled=false"
else
  bad "console: want 4 console templates by default and none (nor link keys in the notifier) when disabled"
fi
# With console.ackLinks the notifier signs links to the console's public URL
# with the same key file the console verifies them with.
if [ "$(grep -c 'value: /var/run/secrets/vigil/link-keys/link-keys' "$tmp/all-features.yaml")" = 2 ] &&
   [ "$(grep -c 'value: "https://vigil.example.org"' "$tmp/all-features.yaml")" = 2 ]; then
  ok "console.ackLinks: console and notifier share the link keys file and the public URL"
else
  bad "console.ackLinks: want VIGIL_LINK_KEYS_FILE and VIGIL_CONSOLE_PUBLIC_URL in both the console and the notifier"
fi

# The files-mode check must catch secretKeyRefs in a real rendering: the
# secrets.mode=env one has one per credential, each must be named.
if [ -s "$tmp/secrets-as-env.yaml" ]; then
  out=$("$validate" -f "$tmp/secrets-as-env.yaml" -secret-files 2>&1)
  n=$(grep -c '^FAIL: .*secretKeyRef' <<<"$out")
  if [ "$n" -ge 6 ] && grep -q '^FAIL: Job .* env VIGIL_PG_CONNINFO: .*secretKeyRef' <<<"$out" &&
     grep -q '^FAIL: Deployment .*-worker .* env VIGIL_KAFKA_PROP_SASL_PASSWORD: .*secretKeyRef' <<<"$out"; then
    ok "secrets-as-env judged as files mode: $n secretKeyRef variables refused"
  else
    bad "secrets-as-env judged as files mode: want >= 6 secretKeyRef failures incl. the Job's conninfo and the SASL password, got:"$'\n'"$out"
  fi
fi

# refuses NAME MESSAGE-REGEX HELM-ARGS...: rendering must fail, saying why.
refuses() {
  local name=$1 want=$2; shift 2
  if render "$name" "$@"; then
    bad "$name: rendered, but must be refused"
  elif grep -Eq -- "$want" "$tmp/$name.err"; then
    ok "$name: refused ($(grep -Eo -- "$want" "$tmp/$name.err" | head -1))"
  else
    bad "$name: refused, but without /$want/: $(cat "$tmp/$name.err")"
  fi
}

refuses hpa-above-partitions 'worker.autoscaling.maxReplicas \(13\) exceeds kafka.observationsPartitions \(12\)' \
  --set worker.autoscaling.maxReplicas=13
refuses keda-above-partitions 'worker.keda.maxReplicas \(25\) exceeds kafka.observationsPartitions \(24\)' \
  -f "$all_values" --set worker.keda.maxReplicas=25
refuses replicas-above-partitions 'worker.replicas \(13\) exceeds' \
  --set worker.autoscaling.enabled=false --set worker.replicas=13
refuses notifier-above-partitions 'notifier.autoscaling.maxReplicas \(7\) exceeds kafka.alertsPartitions \(6\)' \
  --set notifier.autoscaling.enabled=true --set notifier.autoscaling.maxReplicas=7
refuses grace-not-shorter 'terminationGracePeriodSeconds \(25\) must be longer than worker.grace \(25\)' \
  --set worker.terminationGracePeriodSeconds=25
refuses hpa-and-keda 'both set' --set worker.keda.enabled=true
refuses secret-in-settings 'pg_conninfo' --set worker.settings.pg_conninfo=host=db
refuses secret-kafka-property 'sasl.password' --set 'kafka.properties.sasl\.password=hunter2'
refuses writable-root 'readOnlyRootFilesystem' --set securityContext.readOnlyRootFilesystem=false
refuses unknown-value "additional properties 'maxReplica' not allowed" --set worker.autoscaling.maxReplica=3
refuses no-secret 'existingSecret' --set secrets.existingSecret=
refuses no-channel 'notifier could send nothing' --set notifier.smtp.url=
refuses tls-without-secret 'kafka.tls.existingSecret' --set kafka.tls.enabled=true
refuses mllp-tls-without-secret 'mllp.tls.existingSecret' --set mllp.enabled=true --set mllp.tls.enabled=true
refuses mllp-grace-not-shorter 'mllp.terminationGracePeriodSeconds \(25\) must be longer than mllp.grace' \
  --set mllp.enabled=true --set mllp.terminationGracePeriodSeconds=25
refuses console-ingress-no-host 'console.ingress.host' --set console.ingress.enabled=true --set console.ingress.tls.secretName=t
refuses console-ingress-no-tls 'console.ingress.tls.secretName' --set console.ingress.enabled=true --set console.ingress.host=vigil.example.org
refuses console-links-no-url 'console.ackLinks needs console.publicUrl' --set console.ackLinks=true
refuses console-hpa-min-above-max 'console.autoscaling.minReplicas \(7\) exceeds' --set console.autoscaling.minReplicas=7
refuses console-unknown-value "additional properties 'hots' not allowed" --set console.ingress.hots=x
refuses console-netpol-no-postgres 'console.networkPolicy.postgres.to is required' --set networkPolicy.enabled=true
refuses console-netpol-no-ingress-from 'console.networkPolicy.ingressFrom is required' \
  -f "$all_values" --set console.networkPolicy.ingressFrom=null
refuses console-netpol-no-smtp 'console.networkPolicy.smtp.to is required' \
  -f "$all_values" --set console.networkPolicy.smtp.to=null
refuses mllp-secret-in-settings "propertyName 'pg_conninfo'" --set mllp.enabled=true --set mllp.settings.pg_conninfo=host=db

# NOTES.txt renders and names what an SRE must create (helm template does not
# print NOTES, so a copy of the chart renders it as a value).
cp -r "$chart" "$tmp/notes-chart"
echo 'notes: {{ include "vigil/templates/NOTES.txt" . | toJson }}' > "$tmp/notes-chart/templates/zz-notes.yaml"
for v in "" "$all_values"; do
  label=${v:+all-features values}
  label=${label:-default values}
  if notes=$("$helm" template vigil "$tmp/notes-chart" "${kube[@]}" ${v:+-f "$v"} --show-only templates/zz-notes.yaml 2>&1) &&
     grep -q 'get secret vigil-credentials' <<<"$notes" && grep -q 'vigil-worker' <<<"$notes"; then
    ok "NOTES.txt renders ($label) and names the Secret to create"
  else
    bad "NOTES.txt ($label): $notes"
  fi
done

# Rules that vigil refuses must fail the check (the rendered rules are run
# through `vigil rules check`).
if [ -n "${VIGIL_BINARY:-}" ]; then
  if ! render bad-rules --set-string 'rules.content=version: 1
rules:
  - id: potassium-high
    kind: threshold
    loinc: "2823-3"
    op: ">>"
'; then
    bad "bad-rules: helm template failed: $(cat "$tmp/bad-rules.err")"
  elif out=$("$validate" -f "$tmp/bad-rules.yaml" "${vigil_args[@]}" 2>&1); then
    bad "bad-rules: the validator accepted rules that vigil refuses"
  else
    ok "bad-rules rejected: $(grep -m1 '^FAIL' <<<"$out")"
  fi
fi

# The validator must reject broken manifests, or its passes mean nothing:
# each mutant is the default rendering with one promise broken.
render base || bad "base render: $(cat "$tmp/base.err")"
# mutant NAME PYTHON-EXPRESSION-ON-s [BASE [FAIL-REGEX [VALIDATOR-ARGS...]]]:
# the validator must fail on the result of the expression on $tmp/BASE.yaml
# (default: base, the default rendering), with a FAIL line matching
# FAIL-REGEX when given (so the mutant is caught by the check meant for it).
mutant() {
  local name=$1 expr=$2 from=${3:-base} why=${4:-}
  local margs=("${@:5}")
  if ! /usr/bin/python3 -c "
import sys
s = open(sys.argv[1]).read()
t = $expr
if t == s:
    sys.exit('mutation changed nothing')
open(sys.argv[2], 'w').write(t)
" "$tmp/$from.yaml" "$tmp/m-$name.yaml"; then
    bad "mutant $name: could not be made"
    return
  fi
  if out=$("$validate" -f "$tmp/m-$name.yaml" "${vigil_args[@]}" "${margs[@]}" 2>&1); then
    bad "mutant $name: the validator accepted it"
  elif [ -n "$why" ] && ! grep -Eq -- "^FAIL: .*$why" <<<"$out"; then
    bad "mutant $name: rejected, but not for /$why/:"$'\n'"$out"
  else
    ok "mutant $name rejected: $(grep -m1 '^FAIL' <<<"$out")"
  fi
}
mutant unknown-field "s.replace('readOnlyRootFilesystem: true', 'readOnlyRootFilesytem: true', 1)"
mutant wrong-case-field "s.replace('allowPrivilegeEscalation: false', 'AllowPrivilegeEscalation: false', 1)"
mutant writable-root "s.replace('readOnlyRootFilesystem: true', 'readOnlyRootFilesystem: false', 1)"
mutant privilege-escalation "s.replace('allowPrivilegeEscalation: false', 'allowPrivilegeEscalation: true')"
mutant keeps-capabilities "s.replace('- ALL', '- NET_RAW')"
mutant runs-as-root "s.replace('runAsNonRoot: true', 'runAsNonRoot: false')"
mutant unconfined-seccomp "s.replace('type: RuntimeDefault', 'type: Unconfined')"
mutant no-readiness-path "s.replace('path: /readyz', 'path: /ready', 1)"
mutant no-liveness "s.replace('livenessProbe:', 'startupProbe:', 1)"
mutant loopback-http "s.replace('\"0.0.0.0:9100\"', '\"127.0.0.1:9100\"')"
mutant no-memory-limit "s.replace('limits:\n              memory: 1Gi', 'limits:\n              cpu: 1', 1)"
mutant rules-subpath "s.replace('mountPath: /etc/vigil/rules\n', 'mountPath: /etc/vigil/rules/rules.yaml\n              subPath: rules.yaml\n', 1)"
mutant rules-not-mounted "s.replace('mountPath: /etc/vigil/rules\n', 'mountPath: /etc/vigil/other\n', 1)"
# The worker's HPA (the console's, first in the rendering, has no partition bound).
mutant hpa-above-partitions "(lambda i: s[:i] + s[i:].replace('maxReplicas: 6', 'maxReplicas: 13', 1))(s.index('# Source: vigil/templates/hpa.yaml'))" \
  base 'maxReplicas 13 exceeds the 12 partitions'
# Since the console (rendered first of the Deployments) exists, the mutants
# above that change the first match catch its breakage; the generic checks
# they exercise apply to every Deployment alike.
mutant short-termination-grace "s.replace('terminationGracePeriodSeconds: 40', 'terminationGracePeriodSeconds: 20', 1)"
mutant password-in-configmap "s.replace('    log_level: info\n', '    log_level: info\n    pg_conninfo: host=db user=vigil password=hunter2\n', 1)"
mutant literal-secret-env "s.replace('- name: VIGIL_PG_CONNINFO_FILE\n              value: /var/run/secrets/vigil/credentials/pg-conninfo', '- name: VIGIL_PG_CONNINFO\n              value: host=db password=hunter2', 1)"
mutant not-a-hook "s.replace('helm.sh/hook: pre-install,pre-upgrade', 'helm.sh/hook: post-install', 1)"
mutant service-wrong-port "s.replace('targetPort: http', 'targetPort: metrics', 1)"
if [ -n "${VIGIL_BINARY:-}" ]; then
  mutant unknown-setting "s.replace('    log_level: info\n', '    loglevel: info\n', 1)"
  mutant unknown-env "s.replace('name: VIGIL_GRACE', 'name: VIGIL_DRAIN_GRACE', 1)"
fi
mutant unknown-kind "s + '\n---\napiVersion: example.org/v1\nkind: Widget\nmetadata:\n  name: w\n'"
# ref VAR KEY / file_env VAR KEY: a Python literal of one env entry at the
# containers' indentation, from a secretKeyRef / as the files mode renders it.
ref() {
  /usr/bin/python3 -c 'import sys; print(repr("            - name: %s\n              valueFrom:\n"
    "                secretKeyRef:\n                  name: vigil-credentials\n"
    "                  key: %s\n" % tuple(sys.argv[1:])))' "$1" "$2"
}
file_env() {
  /usr/bin/python3 -c 'import sys; print(repr("            - name: %s_FILE\n"
    "              value: /var/run/secrets/vigil/credentials/%s\n" % tuple(sys.argv[1:])))' "$1" "$2"
}
# Secrets as files, every feature on (all-features rendering, -secret-files):
# each credential put back into the environment must be refused, the two
# that were secretKeyRefs before vigil read their _FILE form first.
mutant sasl-password-secretkeyref \
  "s.replace($(file_env VIGIL_KAFKA_PROP_SASL_PASSWORD kafka-sasl-password), $(ref VIGIL_KAFKA_PROP_SASL_PASSWORD kafka-sasl-password), 1)" \
  all-features 'env VIGIL_KAFKA_PROP_SASL_PASSWORD: takes its value from secretKeyRef' -secret-files
# The Job is rendered last: its conninfo is the last VIGIL_PG_CONNINFO_FILE.
mutant migrate-conninfo-secretkeyref \
  "(lambda o, n: s[:s.rindex(o)] + n + s[s.rindex(o) + len(o):])($(file_env VIGIL_PG_CONNINFO pg-conninfo), $(ref VIGIL_PG_CONNINFO pg-conninfo))" \
  all-features 'Job .* env VIGIL_PG_CONNINFO: takes its value from secretKeyRef' -secret-files
# The Job's conninfo file must be mounted, not only named.
mutant migrate-conninfo-not-mounted \
  "(lambda o: s[:s.rindex(o)] + s[s.rindex(o) + len(o):])('            - name: credentials\n              mountPath: /var/run/secrets/vigil/credentials\n              readOnly: true\n')" \
  all-features 'Job .* env VIGIL_PG_CONNINFO_FILE: must name a file of a mounted Secret' -secret-files
# The console: probes, loopback, a budget of its own, its credentials as
# files, an autoscaler that never leaves one replica; and an Ingress that
# routes only the public paths, over TLS.
console_at() { # OLD NEW [TEMPLATE]: first OLD after the console template's start
  echo "(lambda i: s[:i] + s[i:].replace($1, $2, 1))(s.index('# Source: vigil/templates/console-${3:-deployment}.yaml'))"
}
mutant console-no-readiness "$(console_at "'readinessProbe:'" "'startupProbe:'")" \
  base 'Deployment vigil-console container console: no HTTP readiness probe'
mutant console-readiness-path "$(console_at "'path: /readyz'" "'path: /healthz'")" \
  base 'Deployment vigil-console container console: readiness probe path'
mutant console-loopback "$(console_at "'\"0.0.0.0:8080\"'" "'\"127.0.0.1:8080\"'")" \
  base 'Deployment vigil-console container console: HTTP address .* loopback-only'
mutant console-pdb-selects-all "$(console_at "'\n      app.kubernetes.io/component: console'" "''" pdb)" \
  base 'PodDisruptionBudget vigil-console: selects the console and'
mutant console-conninfo-secretkeyref \
  "$(console_at "$(file_env VIGIL_PG_CONNINFO pg-conninfo)" "$(ref VIGIL_PG_CONNINFO pg-conninfo)")" \
  all-features 'Deployment vigil-console container console env VIGIL_PG_CONNINFO: takes its value from secretKeyRef' -secret-files
mutant console-sms-secret-secretkeyref \
  "$(console_at "$(file_env VIGIL_SMS_INBOUND_SECRET sms-inbound-secret)" "$(ref VIGIL_SMS_INBOUND_SECRET sms-inbound-secret)")" \
  all-features 'env VIGIL_SMS_INBOUND_SECRET: takes its value from secretKeyRef' -secret-files
mutant console-hpa-one "$(console_at "'minReplicas: 3'" "'minReplicas: 1'" hpa)" \
  all-features 'HorizontalPodAutoscaler vigil-console: minReplicas must be at least 2'
mutant ingress-exposes-metrics "s.replace('- path: /ack/', '- path: /metrics', 1)" \
  all-features 'Ingress vigil-console path "/metrics": exposes /metrics'
mutant ingress-root "s.replace('- path: /console/', '- path: /', 1)" \
  all-features 'Ingress vigil-console path "/": exposes /metrics'
mutant ingress-healthz "s.replace('- path: /ack/', '- path: /healthz', 1)" \
  all-features 'exposes /healthz'
mutant ingress-regex-path "s.replace('pathType: Prefix', 'pathType: ImplementationSpecific', 1)" \
  all-features 'pathType ImplementationSpecific'
mutant ingress-no-tls "s.replace('  tls:\n    - hosts:\n        - \"vigil.example.org\"\n      secretName: vigil-console-tls\n', '', 1)" \
  all-features 'Ingress vigil-console: no tls'
mutant ingress-other-host "s.replace('- host: \"vigil.example.org\"', '- host: \"other.example.org\"', 1)" \
  all-features 'host "other.example.org" has no tls entry'
mutant ingress-to-worker "s.replace('                name: vigil-console\n                port:\n                  name: http', '                name: vigil-worker-metrics\n                port:\n                  name: metrics', 1)" \
  all-features 'Service vigil-worker-metrics does not select \(only\) the console'
# The console's NetworkPolicy (all features: networkPolicy.enabled) and the
# ports it relies on: /metrics on a port of its own, the Service's ports.
mutant console-metrics-on-pages-port "$(console_at "'value: \"0.0.0.0:9103\"'" "'value: \"0.0.0.0:8080\"'")" \
  all-features 'NetworkPolicy vigil-console \(console\): /metrics shares the pages. port'
mutant console-service-http-to-metrics "$(console_at "'targetPort: http'" "'targetPort: metrics'" service)" \
  base 'Service vigil-console port http: targetPort metrics is not the console.s pages port'
mutant console-netpol-metrics-from-all "$(console_at "'      from:\n        - namespaceSelector:\n            matchLabels:\n              kubernetes.io/metadata.name: monitoring\n'" "''" networkpolicy)" \
  all-features 'NetworkPolicy vigil-console \(console\) ingress rule 2: admits every source'
mutant console-netpol-pages-from-every-namespace "$(console_at "'      from:\n        - namespaceSelector:\n            matchLabels:\n              kubernetes.io/metadata.name: ingress-nginx\n'" "'      from:\n        - namespaceSelector: {}\n          x-drop:\n'" networkpolicy).replace('          x-drop:\n          podSelector:\n            matchLabels:\n              app.kubernetes.io/name: ingress-nginx\n', '', 1)" \
  all-features 'NetworkPolicy vigil-console \(console\) ingress rule 1: a peer admits every source'
mutant console-netpol-metrics-with-pages "$(console_at "'        - port: metrics\n          protocol: TCP\n'" "'        - port: metrics\n          protocol: TCP\n        - port: http\n          protocol: TCP\n'" networkpolicy)" \
  all-features 'ingress rule 2: admits the same peers to the pages and to /metrics'
mutant console-netpol-every-port "$(console_at "'    - ports:\n        - port: http\n          protocol: TCP\n      from:'" "'    - from:'" networkpolicy)" \
  all-features 'ingress rule 1: admits every port'
mutant console-netpol-egress-anywhere "$(console_at "'  egress:\n    - ports:\n'" "'  egress:\n    - {}\n    - ports:\n'" networkpolicy)" \
  all-features 'NetworkPolicy vigil-console \(console\) egress rule 1: allows every port'
mutant console-netpol-postgres-anywhere "$(console_at "'      to:\n        - ipBlock:\n            cidr: 10.20.0.0/16\n'" "''" networkpolicy)" \
  all-features 'egress rule 2: allows its ports to any destination'
mutant console-netpol-egress-open "$(console_at "'    - Ingress\n    - Egress\n'" "'    - Ingress\n'" networkpolicy)" \
  all-features 'policyTypes must restrict both Ingress and Egress'
mutant envfrom-secret \
  "s.replace('          env:\n', '          envFrom:\n            - secretRef:\n                name: vigil-credentials\n          env:\n', 1)" \
  all-features 'envFrom Secret vigil-credentials' -secret-files

finish
