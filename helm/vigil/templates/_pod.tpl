{{/*
The Deployment of a long-running component (worker or notifier):
(list $ "worker") or (list $ "notifier"). Both are Kafka consumers that serve
/metrics, /healthz and /readyz on one port and read their credentials from
secrets.existingSecret; only the worker mounts the rules, only the notifier
the acknowledgement link keys (when console.ackLinks is on).
*/}}
{{- define "vigil.deployment" -}}
{{- $root := index . 0 -}}
{{- $component := index . 1 -}}
{{- $c := index $root.Values $component -}}
{{- $v := $root.Values -}}
{{- $scaled := or $c.autoscaling.enabled (and (hasKey $c "keda") $c.keda.enabled) -}}
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ include "vigil.componentName" (list $root $component) }}
  labels:
    {{- include "vigil.componentLabels" (list $root $component) | nindent 4 }}
  annotations:
    {{- if eq $component "worker" }}
    vigil.io/topic: {{ $v.kafka.observationsTopic | quote }}
    vigil.io/topic-partitions: {{ $v.kafka.observationsPartitions | quote }}
    {{- else }}
    vigil.io/topic: {{ $v.kafka.alertsTopic | quote }}
    vigil.io/topic-partitions: {{ $v.kafka.alertsPartitions | quote }}
    {{- end }}
spec:
  {{- if not $scaled }}
  replicas: {{ $c.replicas }}
  {{- end }}
  revisionHistoryLimit: 5
  selector:
    matchLabels:
      {{- include "vigil.selectorLabels" (list $root $component) | nindent 6 }}
  strategy:
    # One consumer at a time leaves the group: each departure is a rebalance.
    type: RollingUpdate
    rollingUpdate:
      maxSurge: 1
      maxUnavailable: 0
  template:
    metadata:
      labels:
        {{- include "vigil.componentLabels" (list $root $component) | nindent 8 }}
        {{- with $c.podLabels }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      annotations:
        checksum/config: {{ include (print $root.Template.BasePath "/configmap-config.yaml") $root | sha256sum }}
        {{- with $c.podAnnotations }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
    spec:
      serviceAccountName: {{ include "vigil.serviceAccountName" $root }}
      # vigil never talks to the Kubernetes API.
      automountServiceAccountToken: false
      enableServiceLinks: false
      {{- with $v.imagePullSecrets }}
      imagePullSecrets:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      # Longer than the drain grace (checked at render time), so SIGTERM's
      # drain, flush and commit finish before SIGKILL.
      terminationGracePeriodSeconds: {{ $c.terminationGracePeriodSeconds }}
      securityContext:
        {{- toYaml $v.podSecurityContext | nindent 8 }}
      containers:
        - name: {{ $component }}
          image: {{ include "vigil.image" $root | quote }}
          imagePullPolicy: {{ $v.image.pullPolicy }}
          args:
            - {{ $component }}
          ports:
            - name: http
              containerPort: {{ $c.port }}
              protocol: TCP
          env:
            - name: VIGIL_CONFIG
              value: /etc/vigil/config/{{ $component }}.yaml
            {{- if eq $component "worker" }}
            - name: VIGIL_HTTP_ADDR
              value: "0.0.0.0:{{ $c.port }}"
            - name: VIGIL_RULES
              value: /etc/vigil/rules/{{ $v.rules.key }}
            {{- else }}
            - name: VIGIL_NOTIFIER_HTTP_ADDR
              value: "0.0.0.0:{{ $c.port }}"
            {{- if include "vigil.ackLinks" $root }}
            # Signed acknowledgement links in messages, pointing at the console.
            - name: VIGIL_CONSOLE_PUBLIC_URL
              value: {{ include "vigil.consolePublicUrl" $root | quote }}
            - name: VIGIL_LINK_KEYS_FILE
              value: /var/run/secrets/vigil/link-keys/{{ $v.secrets.linkKeysKey }}
            {{- end }}
            {{- end }}
            - name: VIGIL_GRACE
              value: {{ $c.grace | quote }}
            {{- if $v.kafka.staticMembership }}
            # Static membership: the member id is the pod's name.
            - name: VIGIL_KAFKA_PROP_GROUP_INSTANCE_ID
              valueFrom:
                fieldRef:
                  fieldPath: metadata.name
            {{- end }}
            {{- include "vigil.secretEnv" (list $root $component) | trim | nindent 12 }}
            {{- with $c.extraEnv }}
            {{- toYaml . | nindent 12 }}
            {{- end }}
          livenessProbe:
            httpGet:
              path: /healthz
              port: http
            {{- toYaml $c.livenessProbe | nindent 12 }}
          readinessProbe:
            httpGet:
              path: /readyz
              port: http
            {{- toYaml $c.readinessProbe | nindent 12 }}
          resources:
            {{- toYaml $c.resources | nindent 12 }}
          securityContext:
            {{- toYaml $v.securityContext | nindent 12 }}
          volumeMounts:
            - name: config
              mountPath: /etc/vigil/config
              readOnly: true
            {{- if eq $component "worker" }}
            - name: rules
              mountPath: /etc/vigil/rules
              readOnly: true
            {{- end }}
            {{- if eq $v.secrets.mode "files" }}
            - name: credentials
              mountPath: /var/run/secrets/vigil/credentials
              readOnly: true
            {{- end }}
            {{- if $v.kafka.tls.enabled }}
            - name: kafka-tls
              mountPath: /var/run/secrets/vigil/kafka-tls
              readOnly: true
            {{- end }}
            {{- if and (eq $component "notifier") (include "vigil.ackLinks" $root) }}
            - name: link-keys
              mountPath: /var/run/secrets/vigil/link-keys
              readOnly: true
            {{- end }}
            - name: tmp
              mountPath: /tmp
      volumes:
        - name: config
          configMap:
            name: {{ include "vigil.componentName" (list $root "config") }}
        {{- if eq $component "worker" }}
        - name: rules
          configMap:
            name: {{ include "vigil.rulesConfigMap" $root }}
        {{- end }}
        {{- if eq $v.secrets.mode "files" }}
        - name: credentials
          secret:
            secretName: {{ $v.secrets.existingSecret }}
            defaultMode: 0440
            items:
              {{- include "vigil.secretItems" (list $root $component) | trim | nindent 14 }}
        {{- end }}
        {{- if $v.kafka.tls.enabled }}
        - name: kafka-tls
          secret:
            secretName: {{ $v.kafka.tls.existingSecret }}
            defaultMode: 0440
        {{- end }}
        {{- if and (eq $component "notifier") (include "vigil.ackLinks" $root) }}
        {{- include "vigil.linkKeysVolume" $root | nindent 8 }}
        {{- end }}
        - name: tmp
          emptyDir:
            sizeLimit: 64Mi
      {{- with $c.nodeSelector }}
      nodeSelector:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $c.affinity }}
      affinity:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $c.tolerations }}
      tolerations:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $c.topologySpreadConstraints }}
      topologySpreadConstraints:
        {{- toYaml . | nindent 8 }}
      {{- end }}
{{- end -}}
