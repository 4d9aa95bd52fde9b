{{/*
vigil mllp: the settings file and the checks values.schema.json cannot
express. Rendering fails with a message naming the values to change.
*/}}
{{- define "vigil.mllpValidate" -}}
{{- $m := .Values.mllp -}}
{{- if le (int $m.terminationGracePeriodSeconds) (int $m.grace) -}}
{{- fail (printf "mllp.terminationGracePeriodSeconds (%d) must be longer than mllp.grace (%d): Kubernetes would kill the listener before it has answered the messages in progress" (int $m.terminationGracePeriodSeconds) (int $m.grace)) -}}
{{- end -}}
{{- if and $m.tls.enabled (not $m.tls.existingSecret) -}}
{{- fail "mllp.tls.enabled needs mllp.tls.existingSecret: the Secret holding tls.crt and tls.key (and ca.crt for clientAuth)" -}}
{{- end -}}
{{- if and $m.tls.clientAuth (not $m.tls.enabled) -}}
{{- fail "mllp.tls.clientAuth needs mllp.tls.enabled" -}}
{{- end -}}
{{- if and $m.facilities $m.existingFacilitiesConfigMap -}}
{{- fail "mllp.facilities and mllp.existingFacilitiesConfigMap are both set: give the mapping one way" -}}
{{- end -}}
{{- range $key, $_ := $m.settings -}}
{{- if or (eq $key "pg_conninfo") (regexMatch "(?i)password|secret" $key) -}}
{{- fail (printf "mllp.settings.%s is a secret: put it in the Secret named by secrets.existingSecret, never in values (they end up in a ConfigMap)" $key) -}}
{{- end -}}
{{- if has $key (list "listen" "http" "grace" "kafka" "bootstrap" "topic" "dlq_topic" "log_level" "facilities" "tls_cert" "tls_key" "tls_client_ca" "max_connections" "idle_timeout" "ack_timeout" "max_message_bytes" "processing_ids") -}}
{{- fail (printf "mllp.settings.%s is set by the chart from its own values; set that value instead" $key) -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* The listener's settings file (VIGIL_CONFIG), as a dict. */}}
{{- define "vigil.mllpSettings" -}}
{{- $m := .Values.mllp -}}
{{- $k := .Values.kafka -}}
{{- $kafka := include "vigil.kafkaProperties" . | fromYaml -}}
{{- $s := dict "bootstrap" $k.bootstrap "topic" $k.observationsTopic "dlq_topic" $k.hl7DlqTopic "log_level" $m.logLevel "max_connections" (int $m.maxConnections) "idle_timeout" (int $m.idleTimeout) "ack_timeout" (int $m.ackTimeout) "max_message_bytes" (int $m.maxMessageBytes) "processing_ids" $m.processingIds -}}
{{- if or $m.facilities $m.existingFacilitiesConfigMap }}{{ $_ := set $s "facilities" "/etc/vigil/facilities/facilities.yaml" }}{{ end -}}
{{- if $m.tls.enabled -}}
{{- $_ := set $s "tls_cert" "/var/run/secrets/vigil/mllp-tls/tls.crt" -}}
{{- $_ := set $s "tls_key" "/var/run/secrets/vigil/mllp-tls/tls.key" -}}
{{- if $m.tls.clientAuth }}{{ $_ := set $s "tls_client_ca" "/var/run/secrets/vigil/mllp-tls/ca.crt" }}{{ end -}}
{{- end -}}
{{- $s = merge $s $m.settings -}}
{{- if $kafka }}{{ $_ := set $s "kafka" $kafka }}{{ end -}}
{{- toYaml $s -}}
{{- end -}}
