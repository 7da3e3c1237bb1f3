{{/*
Names and labels. `app.kubernetes.io/name: dispatch` with `app.kubernetes.io/component` gateway,
handlers, rabbitmq or postgresql is what the Kubernetes runtime's NetworkPolicy for function pods
knows Dispatch's pods by (its default kubernetes_caller_labels and kubernetes_protected_labels):
those two labels are fixed.
*/}}
{{- define "dispatch.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 40 | trimSuffix "-" -}}
{{- else if contains "dispatch" .Release.Name -}}
{{- .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-dispatch" .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "dispatch.selectorLabels" -}}
app.kubernetes.io/name: dispatch
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "dispatch.labels" -}}
{{ include "dispatch.selectorLabels" . }}
app.kubernetes.io/version: {{ include "dispatch.tag" . | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{/* Labels of one component; call with (dict "root" $ "component" "gateway"). */}}
{{- define "dispatch.componentLabels" -}}
{{ include "dispatch.labels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "dispatch.componentSelector" -}}
{{ include "dispatch.selectorLabels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "dispatch.tag" -}}
{{- .Values.image.tag | default .Chart.AppVersion -}}
{{- end -}}

{{- define "dispatch.image" -}}
{{- printf "%s:%s" .Values.image.repository (include "dispatch.tag" .) -}}
{{- end -}}

{{- define "dispatch.installation" -}}
{{- .Values.installation | default .Release.Name -}}
{{- end -}}

{{- define "dispatch.functionsNamespace" -}}
{{- .Values.runtime.kubernetes.namespace | default .Release.Namespace -}}
{{- end -}}

{{- define "dispatch.buildNamespace" -}}
{{- (.Values.runtime.kubernetes.builds | default dict).namespace | default (include "dispatch.functionsNamespace" .) -}}
{{- end -}}

{{/* What image builds need beside what functions need: their Jobs, and the log of a Job's pod. */}}
{{- define "dispatch.buildRules" -}}
- apiGroups: [batch]
  resources: [jobs]
  verbs: [get, create, delete]
- apiGroups: [""]
  resources: [pods/log]
  verbs: [get]
{{- end -}}

{{- define "dispatch.handlersServiceAccount" -}}
{{- if .Values.serviceAccount.create -}}
{{- .Values.serviceAccount.name | default (printf "%s-handlers" (include "dispatch.fullname" .)) -}}
{{- else -}}
{{- .Values.serviceAccount.name | default "default" -}}
{{- end -}}
{{- end -}}

{{- define "dispatch.gatewayServiceAccount" -}}
{{- if .Values.serviceAccount.create -}}
{{- printf "%s-gateway" (include "dispatch.fullname" .) -}}
{{- else -}}
default
{{- end -}}
{{- end -}}

{{/*
The chart's own Secret (URLs, generated passwords and key). Values generated at the first install
are read back with `lookup` by every later upgrade, so they never change under a running installation.
*/}}
{{- define "dispatch.secretName" -}}
{{- include "dispatch.fullname" . -}}
{{- end -}}

{{/* A generated value kept across upgrades; call with (dict "root" $ "key" "secret-key" "given" "..." "fresh" "..."). */}}
{{- define "dispatch.kept" -}}
{{- $live := lookup "v1" "Secret" .root.Release.Namespace (include "dispatch.secretName" .root) -}}
{{- $stored := dig "data" .key "" ($live | default dict) -}}
{{- .given | default ($stored | b64dec) | default .fresh -}}
{{- end -}}

{{- define "dispatch.fernetKey" -}}
{{- randBytes 32 | replace "+" "-" | replace "/" "_" -}}
{{- end -}}

{{- define "dispatch.rabbitmqPassword" -}}
{{- include "dispatch.kept" (dict "root" . "key" "rabbitmq-password" "given" .Values.rabbitmq.password "fresh" (randAlphaNum 32)) -}}
{{- end -}}

{{- define "dispatch.postgresqlPassword" -}}
{{- include "dispatch.kept" (dict "root" . "key" "postgresql-password" "given" .Values.postgresql.password "fresh" (randAlphaNum 32)) -}}
{{- end -}}

{{/* Where the bus URL, store URL and secret key are read from: (list secretName key). */}}
{{- define "dispatch.busRef" -}}
{{- if and .Values.bus.existingSecret (not .Values.rabbitmq.enabled) -}}
{{- list .Values.bus.existingSecret .Values.bus.existingSecretKey | toJson -}}
{{- else -}}
{{- list (include "dispatch.secretName" .) "bus-url" | toJson -}}
{{- end -}}
{{- end -}}

{{- define "dispatch.storeRef" -}}
{{- if and .Values.store.existingSecret (not .Values.postgresql.enabled) -}}
{{- list .Values.store.existingSecret .Values.store.existingSecretKey | toJson -}}
{{- else -}}
{{- list (include "dispatch.secretName" .) "store-url" | toJson -}}
{{- end -}}
{{- end -}}

{{- define "dispatch.secretKeyRef" -}}
{{- if .Values.secretKey.existingSecret -}}
{{- list .Values.secretKey.existingSecret .Values.secretKey.existingSecretKey | toJson -}}
{{- else -}}
{{- list (include "dispatch.secretName" .) "secret-key" | toJson -}}
{{- end -}}
{{- end -}}

{{- define "dispatch.envFromSecret" -}}
{{- $ref := fromJsonArray .ref -}}
- name: {{ .name }}
  valueFrom:
    secretKeyRef:
      name: {{ index $ref 0 }}
      key: {{ index $ref 1 }}
{{- end -}}

{{/* What the chart cannot do without: checked once, before anything renders. */}}
{{- define "dispatch.checks" -}}
{{- if not (or .Values.rabbitmq.enabled .Values.bus.url .Values.bus.existingSecret) -}}
{{- fail "the bus is missing: set bus.url (amqp://user:password@host:5672/), bus.existingSecret, or rabbitmq.enabled=true for a trial" -}}
{{- end -}}
{{- if and .Values.bus.url (not (regexMatch "^amqps?://" .Values.bus.url)) -}}
{{- fail "bus.url must be an amqp:// or amqps:// URL" -}}
{{- end -}}
{{- if not (or .Values.postgresql.enabled .Values.store.url .Values.store.existingSecret) -}}
{{- fail "the store is missing: set store.url (postgresql://user:password@host:5432/dispatch), store.existingSecret, or postgresql.enabled=true for a trial" -}}
{{- end -}}
{{- if and .Values.store.url (not (regexMatch "^postgres(ql)?://" .Values.store.url)) -}}
{{- fail "store.url must be a postgresql:// URL" -}}
{{- end -}}
{{- if not (or .Values.bootstrap.publicKey .Values.bootstrap.existingSecret .Values.oidc.issuer) -}}
{{- fail "nobody could log in: give the bootstrap identity's public key (openssl genrsa -out bootstrap.pem 2048; openssl rsa -in bootstrap.pem -pubout -out bootstrap.pub; --set-file bootstrap.publicKey=bootstrap.pub), bootstrap.existingSecret, or oidc.issuer and oidc.clientId" -}}
{{- end -}}
{{- if and .Values.bootstrap.publicKey (not (contains "-----BEGIN PUBLIC KEY-----" .Values.bootstrap.publicKey)) -}}
{{- fail "bootstrap.publicKey must be a PEM public key (-----BEGIN PUBLIC KEY-----), e.g. from openssl rsa -in bootstrap.pem -pubout" -}}
{{- end -}}
{{- if ne (empty .Values.oidc.issuer) (empty .Values.oidc.clientId) -}}
{{- fail "oidc.issuer and oidc.clientId go together: give both, or neither" -}}
{{- end -}}
{{- if has (int .Values.health.port) (list (int .Values.gateway.service.managementPort) (int .Values.gateway.service.apiPort)) -}}
{{- fail (printf "health.port %v is also a port of the gateway (gateway.service.managementPort, apiPort): choose another" .Values.health.port) -}}
{{- end -}}
{{- end -}}

{{/* The host names the management API answers to. */}}
{{- define "dispatch.publicNames" -}}
{{- $service := printf "%s-gateway" (include "dispatch.fullname" .) -}}
{{- $names := list $service (printf "%s.%s" $service .Release.Namespace) (printf "%s.%s.svc" $service .Release.Namespace) (printf "%s.%s.svc.cluster.local" $service .Release.Namespace) -}}
{{- if and .Values.ingress.enabled .Values.ingress.managementHost -}}
{{- $names = append $names .Values.ingress.managementHost -}}
{{- end -}}
{{- concat $names .Values.publicNames | uniq | toJson -}}
{{- end -}}

{{/* Settings every Dispatch process of the installation shares. */}}
{{- define "dispatch.env" -}}
{{- include "dispatch.envFromSecret" (dict "name" "DISPATCH_BUS" "ref" (include "dispatch.busRef" .)) }}
{{ include "dispatch.envFromSecret" (dict "name" "DISPATCH_STORE" "ref" (include "dispatch.storeRef" .)) }}
{{ include "dispatch.envFromSecret" (dict "name" "DISPATCH_SECRET_KEY" "ref" (include "dispatch.secretKeyRef" .)) }}
- name: DISPATCH_NAMESPACE
  value: {{ include "dispatch.installation" . | quote }}
- name: DISPATCH_DEFAULT_ORGANIZATION
  value: {{ .Values.organization | quote }}
- name: DISPATCH_LOG_LEVEL
  value: {{ .Values.logLevel | quote }}
{{- with .Values.tracing }}
{{- if .endpoint }}
- name: OTEL_EXPORTER_OTLP_ENDPOINT
  value: {{ .endpoint | quote }}
- name: OTEL_EXPORTER_OTLP_PROTOCOL
  value: {{ .protocol | quote }}
- name: OTEL_TRACES_SAMPLER
  value: {{ .sampler | quote }}
{{- if .samplerArg }}
- name: OTEL_TRACES_SAMPLER_ARG
  value: {{ .samplerArg | quote }}
{{- end }}
{{- end }}
{{- end }}
{{- with .Values.extraEnv }}
{{ toYaml . }}
{{- end }}
- name: DISPATCH_DATA_DIR
  value: /var/lib/dispatch
# The pod's address, not loopback: the kubelet's probes and Prometheus come from outside the pod.
- name: DISPATCH_HOST
  value: 0.0.0.0
- name: DISPATCH_PORT
  value: {{ .Values.gateway.service.managementPort | quote }}
- name: DISPATCH_API_PORT
  value: {{ .Values.gateway.service.apiPort | quote }}
- name: DISPATCH_HEALTH_PORT
  value: {{ .Values.health.port | quote }}
- name: DISPATCH_RUNTIME
  value: {{ .Values.runtime.type | quote }}
{{- if eq .Values.runtime.type "kubernetes" }}
- name: DISPATCH_KUBERNETES_NAMESPACE
  value: {{ include "dispatch.functionsNamespace" . | quote }}
- name: DISPATCH_KUBERNETES_NETWORK_POLICY
  value: {{ .Values.runtime.kubernetes.networkPolicy | quote }}
{{- if ne (include "dispatch.functionsNamespace" .) .Release.Namespace }}
- name: DISPATCH_KUBERNETES_DISPATCH_NAMESPACE
  value: {{ .Release.Namespace | quote }}
{{- end }}
{{- with (.Values.runtime.kubernetes.builds | default dict) }}
{{- if .registry }}
- name: DISPATCH_KUBERNETES_REGISTRY
  value: {{ .registry | quote }}
- name: DISPATCH_KUBERNETES_BUILD_NAMESPACE
  value: {{ include "dispatch.buildNamespace" $ | quote }}
- name: DISPATCH_KUBERNETES_REGISTRY_INSECURE
  value: {{ .insecureRegistry | default false | quote }}
{{- if .registrySecret }}
- name: DISPATCH_KUBERNETES_REGISTRY_SECRET
  value: {{ .registrySecret | quote }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}
{{- range $name, $value := .Values.settings }}
- name: {{ printf "DISPATCH_%s" (upper $name) }}
  value: {{ if or (kindIs "map" $value) (kindIs "slice" $value) }}{{ toJson $value | quote }}{{ else }}{{ toString $value | quote }}{{ end }}
{{- end }}
- name: HOME
  value: /tmp
- name: PYTHONDONTWRITEBYTECODE
  value: "1"
- name: PYTHONUNBUFFERED
  value: "1"
{{- end -}}

{{/* Prometheus's annotations of a gateway or handler pod: its health port answers /metrics without a token. */}}
{{- define "dispatch.scrapeAnnotations" -}}
{{- if .Values.metrics.enabled -}}
prometheus.io/scrape: "true"
prometheus.io/port: {{ .Values.health.port | quote }}
prometheus.io/path: /metrics
{{- end -}}
{{- end -}}

{{/*
The health port of a gateway or handler container and its probes. Liveness asks /healthz, which
answers while the event loop turns and asks nothing of the bus or the store: an outage of either
makes pods unready (/readyz), never restarts them. The port opens once the process has started,
after handlers have caught their read models up with the event log: the startup probe gives that
ten minutes before liveness counts.
*/}}
{{- define "dispatch.healthPort" -}}
- name: health
  containerPort: {{ .Values.health.port }}
  protocol: TCP
{{- end -}}

{{- define "dispatch.probes" -}}
startupProbe:
  httpGet: {path: /healthz, port: health}
  periodSeconds: 5
  timeoutSeconds: 3
  failureThreshold: 120
livenessProbe:
  httpGet: {path: /healthz, port: health}
  periodSeconds: 10
  timeoutSeconds: 5
  failureThreshold: 6
readinessProbe:
  httpGet: {path: /readyz, port: health}
  periodSeconds: 5
  timeoutSeconds: 3
  failureThreshold: 2
{{- end -}}

{{/* The container security context of every container of the chart. */}}
{{- define "dispatch.containerSecurityContext" -}}
allowPrivilegeEscalation: false
privileged: false
readOnlyRootFilesystem: true
runAsNonRoot: true
capabilities:
  drop: [ALL]
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{- define "dispatch.checksum" -}}
{{- list .Values.bus .Values.store .Values.secretKey .Values.bootstrap .Values.oidc .Values.settings | toJson | sha256sum -}}
{{- end -}}
