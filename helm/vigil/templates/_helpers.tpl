{{/*
Names, labels and the pieces the worker, notifier and migration pods share.
*/}}

{{- define "vigil.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "vigil.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* A component's resource name: fullname-component, within 63 characters. */}}
{{- define "vigil.componentName" -}}
{{- $root := index . 0 -}}
{{- $component := index . 1 -}}
{{- printf "%s-%s" (include "vigil.fullname" $root | trunc (int (sub 62 (len $component)))) $component | trimSuffix "-" -}}
{{- end -}}

{{- define "vigil.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "vigil.labels" -}}
helm.sh/chart: {{ include "vigil.chart" . }}
{{ include "vigil.baseSelectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: vigil
{{- end -}}

{{- define "vigil.baseSelectorLabels" -}}
app.kubernetes.io/name: {{ include "vigil.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/* Labels of one component: call with (list $ "worker"). */}}
{{- define "vigil.componentLabels" -}}
{{- $root := index . 0 -}}
{{ include "vigil.labels" $root }}
app.kubernetes.io/component: {{ index . 1 }}
{{- end -}}

{{- define "vigil.selectorLabels" -}}
{{- $root := index . 0 -}}
{{ include "vigil.baseSelectorLabels" $root }}
app.kubernetes.io/component: {{ index . 1 }}
{{- end -}}

{{- define "vigil.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "vigil.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "vigil.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}
{{- end -}}

{{/* The long-running components this release deploys, space-separated. */}}
{{- define "vigil.components" -}}
worker{{ if .Values.notifier.enabled }} notifier{{ end }}
{{- end -}}

{{- define "vigil.rulesConfigMap" -}}
{{- default (include "vigil.componentName" (list . "rules")) .Values.rules.existingConfigMap -}}
{{- end -}}

{{/* The highest replica count a component can reach: (list $values $component). */}}
{{- define "vigil.maxReplicas" -}}
{{- $c := index . 0 -}}
{{- if and (hasKey $c "keda") $c.keda.enabled -}}
{{- $c.keda.maxReplicas -}}
{{- else if $c.autoscaling.enabled -}}
{{- $c.autoscaling.maxReplicas -}}
{{- else -}}
{{- $c.replicas -}}
{{- end -}}
{{- end -}}

{{/*
Checks values.schema.json cannot express (relations between values). Rendering
fails with a message that names the values to change.
*/}}
{{- define "vigil.validate" -}}
{{- $v := .Values -}}
{{- $checks := list (list "worker" $v.worker $v.kafka.observationsPartitions "kafka.observationsPartitions" $v.kafka.observationsTopic) -}}
{{- if $v.notifier.enabled -}}
{{- $checks = append $checks (list "notifier" $v.notifier $v.kafka.alertsPartitions "kafka.alertsPartitions" $v.kafka.alertsTopic) -}}
{{- end -}}
{{- range $checks -}}
{{- $name := index . 0 -}}
{{- $c := index . 1 -}}
{{- $partitions := int (index . 2) -}}
{{- $max := int (include "vigil.maxReplicas" (list $c)) -}}
{{- $source := printf "%s.replicas" $name -}}
{{- if and (hasKey $c "keda") $c.keda.enabled -}}
{{- $source = printf "%s.keda.maxReplicas" $name -}}
{{- else if $c.autoscaling.enabled -}}
{{- $source = printf "%s.autoscaling.maxReplicas" $name -}}
{{- end -}}
{{- if gt $max $partitions -}}
{{- fail (printf "%s (%d) exceeds %s (%d): a %s beyond the partition count of %s gets no partition and sits idle. Lower %s, or add partitions to the topic first and then raise %s." $source $max (index . 3) $partitions $name (index . 4) $source (index . 3)) -}}
{{- end -}}
{{- if and $c.autoscaling.enabled (gt (int $c.autoscaling.minReplicas) (int $c.autoscaling.maxReplicas)) -}}
{{- fail (printf "%s.autoscaling.minReplicas (%d) exceeds %s.autoscaling.maxReplicas (%d)" $name (int $c.autoscaling.minReplicas) $name (int $c.autoscaling.maxReplicas)) -}}
{{- end -}}
{{- if and (hasKey $c "keda") $c.keda.enabled (gt (int $c.keda.minReplicas) (int $c.keda.maxReplicas)) -}}
{{- fail (printf "%s.keda.minReplicas (%d) exceeds %s.keda.maxReplicas (%d)" $name (int $c.keda.minReplicas) $name (int $c.keda.maxReplicas)) -}}
{{- end -}}
{{- if le (int $c.terminationGracePeriodSeconds) (int $c.grace) -}}
{{- fail (printf "%s.terminationGracePeriodSeconds (%d) must be longer than %s.grace (%d): Kubernetes would kill the %s before it has drained and committed" $name (int $c.terminationGracePeriodSeconds) $name (int $c.grace) $name) -}}
{{- end -}}
{{- range $key, $_ := $c.settings -}}
{{- if or (has $key (list "pg_conninfo" "smtp_password" "sms_password")) (regexMatch "(?i)password|secret" $key) -}}
{{- fail (printf "%s.settings.%s is a secret: put it in the Secret named by secrets.existingSecret, never in values (they end up in a ConfigMap)" $name $key) -}}
{{- end -}}
{{- if has $key (list "http" "grace" "rules" "kafka" "bootstrap" "group" "topic" "log_level" "threads" "assignor" "registry_url" "max_record_bytes") -}}
{{- fail (printf "%s.settings.%s is set by the chart from its own values; set that value instead" $name $key) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- range $prop, $_ := $v.kafka.properties -}}
{{- if regexMatch "(?i)password|secret|\\.pem$|sasl\\.oauthbearer\\.config|sasl\\.username" $prop -}}
{{- fail (printf "kafka.properties.%s is a credential: use kafka.sasl / kafka.tls (Secrets), never values, which end up in a ConfigMap" $prop) -}}
{{- end -}}
{{- end -}}
{{- if and $v.notifier.enabled (not $v.notifier.smtp.url) (not $v.notifier.sms.url) -}}
{{- fail "notifier.smtp.url and notifier.sms.url are both empty: the notifier could send nothing and refuses to start. Set at least one, or notifier.enabled=false to run workers only" -}}
{{- end -}}
{{- if and $v.kafka.tls.enabled (not $v.kafka.tls.existingSecret) -}}
{{- fail "kafka.tls.enabled needs kafka.tls.existingSecret: the Secret holding the CA (and client certificate and key)" -}}
{{- end -}}
{{- if and $v.kafka.sasl.enabled (not $v.kafka.sasl.username) -}}
{{- fail "kafka.sasl.enabled needs kafka.sasl.username" -}}
{{- end -}}
{{- if $v.console.enabled -}}
{{- $c := $v.console -}}
{{- if and $c.autoscaling.enabled (gt (int $c.autoscaling.minReplicas) (int $c.autoscaling.maxReplicas)) -}}
{{- fail (printf "console.autoscaling.minReplicas (%d) exceeds console.autoscaling.maxReplicas (%d)" (int $c.autoscaling.minReplicas) (int $c.autoscaling.maxReplicas)) -}}
{{- end -}}
{{- if and $c.ingress.enabled (not $c.ingress.host) -}}
{{- fail "console.ingress.enabled needs console.ingress.host: the name researchers reach the console by" -}}
{{- end -}}
{{- if and $c.ingress.enabled (not $c.ingress.tls.secretName) -}}
{{- fail "console.ingress.enabled needs console.ingress.tls.secretName: the console's session cookies are Secure and its sign-in takes passwords, so it is served over TLS only" -}}
{{- end -}}
{{- if and $c.ackLinks (not (include "vigil.consolePublicUrl" $)) -}}
{{- fail "console.ackLinks needs console.publicUrl (or console.ingress.host): the links in messages point there" -}}
{{- end -}}
{{- end -}}
{{- if and $v.worker.keda.enabled $v.worker.autoscaling.enabled -}}
{{- fail "worker.keda.enabled and worker.autoscaling.enabled are both set: KEDA creates its own HPA and two would fight over the worker Deployment; disable worker.autoscaling" -}}
{{- end -}}
{{- end -}}

{{/* librdkafka properties derived from kafka.tls / kafka.sasl plus kafka.properties. */}}
{{- define "vigil.kafkaProperties" -}}
{{- $k := .Values.kafka -}}
{{- $p := dict -}}
{{- if and $k.tls.enabled $k.sasl.enabled -}}
{{- $_ := set $p "security.protocol" "SASL_SSL" -}}
{{- else if $k.tls.enabled -}}
{{- $_ := set $p "security.protocol" "SSL" -}}
{{- else if $k.sasl.enabled -}}
{{- $_ := set $p "security.protocol" "SASL_PLAINTEXT" -}}
{{- end -}}
{{- if $k.tls.enabled -}}
{{- $_ := set $p "ssl.ca.location" (printf "/var/run/secrets/vigil/kafka-tls/%s" $k.tls.caKey) -}}
{{- if $k.tls.clientCert -}}
{{- $_ := set $p "ssl.certificate.location" (printf "/var/run/secrets/vigil/kafka-tls/%s" $k.tls.certKey) -}}
{{- $_ := set $p "ssl.key.location" (printf "/var/run/secrets/vigil/kafka-tls/%s" $k.tls.keyKey) -}}
{{- end -}}
{{- end -}}
{{- if $k.sasl.enabled -}}
{{- $_ := set $p "sasl.mechanism" $k.sasl.mechanism -}}
{{- $_ := set $p "sasl.username" $k.sasl.username -}}
{{- end -}}
{{- range $key, $val := $k.properties -}}
{{- $_ := set $p $key $val -}}
{{- end -}}
{{- toYaml $p -}}
{{- end -}}

{{/*
Credentials of a vigil pod, as a JSON list of [VARIABLE, secret key]:
(list $ "worker"|"notifier"|"console"|"migration"). One list feeds both the
environment (vigil.secretEnv) and the files mode's projected volume
(vigil.secretItems), so a VAR_FILE never names a key that is not mounted.
The migration Job needs only the database; the console no Kafka.
*/}}
{{- define "vigil.secretPairs" -}}
{{- $root := index . 0 -}}
{{- $component := index . 1 -}}
{{- $s := $root.Values.secrets -}}
{{- $n := $root.Values.notifier -}}
{{- $secrets := list (list "VIGIL_PG_CONNINFO" $s.pgConninfoKey) -}}
{{- if eq $component "notifier" -}}
{{- if $n.smtp.user -}}
{{- $secrets = append $secrets (list "VIGIL_SMTP_PASSWORD" $s.smtpPasswordKey) -}}
{{- end -}}
{{- if $n.sms.user -}}
{{- $secrets = append $secrets (list "VIGIL_SMS_PASSWORD" $s.smsPasswordKey) -}}
{{- end -}}
{{- end -}}
{{- if eq $component "console" -}}
{{- if and $n.smtp.url $n.smtp.user -}}
{{- $secrets = append $secrets (list "VIGIL_SMTP_PASSWORD" $s.smtpPasswordKey) -}}
{{- end -}}
{{- if $root.Values.console.smsInbound -}}
{{- $secrets = append $secrets (list "VIGIL_SMS_INBOUND_SECRET" $s.smsInboundSecretKey) -}}
{{- end -}}
{{- end -}}
{{- if and $root.Values.kafka.sasl.enabled (ne $component "migration") (ne $component "console") -}}
{{- $secrets = append $secrets (list "VIGIL_KAFKA_PROP_SASL_PASSWORD" $root.Values.kafka.sasl.passwordKey) -}}
{{- end -}}
{{- toJson $secrets -}}
{{- end -}}

{{/*
Environment of a vigil pod: (list $ "worker"|"notifier"|"migration").
Credentials never appear as literal values. secrets.mode files: each is a
file of the mounted Secret, passed as VAR_FILE (every vigil command reads
VAR_FILE, VIGIL_KAFKA_PROP_<PROP>_FILE included), so no secret is in the
process environment; env: secretKeyRef variables.
*/}}
{{- define "vigil.secretEnv" -}}
{{- $s := (index . 0).Values.secrets -}}
{{- range include "vigil.secretPairs" . | fromJsonArray }}
{{- if eq $s.mode "files" }}
- name: {{ index . 0 }}_FILE
  value: /var/run/secrets/vigil/credentials/{{ index . 1 }}
{{- else }}
- name: {{ index . 0 }}
  valueFrom:
    secretKeyRef:
      name: {{ $s.existingSecret }}
      key: {{ index . 1 }}
{{- end }}
{{- end }}
{{- end -}}

{{/* Secret keys a component's credentials volume projects: (list $ component). */}}
{{- define "vigil.secretItems" -}}
{{- range include "vigil.secretPairs" . | fromJsonArray }}
- key: {{ index . 1 }}
  path: {{ index . 1 }}
{{- end }}
{{- end -}}

{{/* The console's address as researchers reach it: console.publicUrl, else
https://console.ingress.host when the ingress is on; empty otherwise. */}}
{{- define "vigil.consolePublicUrl" -}}
{{- $c := .Values.console -}}
{{- if $c.publicUrl -}}
{{- $c.publicUrl | trimSuffix "/" -}}
{{- else if and $c.ingress.enabled $c.ingress.host -}}
{{- printf "https://%s" $c.ingress.host -}}
{{- end -}}
{{- end -}}

{{/* Whether the notifier signs acknowledgement links (and the console
verifies them): console and console.ackLinks on. */}}
{{- define "vigil.ackLinks" -}}
{{- if and .Values.console.enabled .Values.console.ackLinks }}true{{ end -}}
{{- end -}}

{{/* The acknowledgement link keys: a file in both secrets modes (vigil reads
them from a path, VIGIL_LINK_KEYS_FILE), mounted on their own so the files
mode's credentials volume keeps one item per VAR_FILE. */}}
{{- define "vigil.linkKeysVolume" -}}
- name: link-keys
  secret:
    secretName: {{ .Values.secrets.existingSecret }}
    defaultMode: 0440
    items:
      - key: {{ .Values.secrets.linkKeysKey }}
        path: {{ .Values.secrets.linkKeysKey }}
{{- end -}}
