{{/* Shared names and labels. Every resource goes through these so names and selectors agree. */}}

{{/* Chart name, overridable so two charts with one name can coexist. */}}
{{- define "visit-tracker.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Resource name: release-chart, or the release name alone when it already contains the chart name.
Truncated to 63 characters because some fields (Service names, labels) are DNS labels.
*/}}
{{- define "visit-tracker.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/* chart label value: name-version, with `+` replaced because labels may not contain it. */}}
{{- define "visit-tracker.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Selector labels: minimal and stable. Deployment selectors are immutable, so nothing that changes
between releases (version, chart) may appear here.
*/}}
{{- define "visit-tracker.selectorLabels" -}}
app.kubernetes.io/name: {{ include "visit-tracker.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* Common labels: selector labels plus version and provenance, for humans and tooling. */}}
{{- define "visit-tracker.labels" -}}
helm.sh/chart: {{ include "visit-tracker.chart" . }}
{{ include "visit-tracker.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: visit-tracker
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* The dev Redis has its own component label so the app's selector never matches it. */}}
{{- define "visit-tracker.redisSelectorLabels" -}}
app.kubernetes.io/name: {{ include "visit-tracker.name" . }}-redis
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "visit-tracker.redisFullname" -}}
{{- printf "%s-redis" (include "visit-tracker.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "visit-tracker.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "visit-tracker.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* Image by digest when given (immutable), else by tag, else by the chart's appVersion. */}}
{{- define "visit-tracker.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/* Name of the Secret holding the Redis password, whichever way it is provided. */}}
{{- define "visit-tracker.redisSecretName" -}}
{{- if .Values.redis.auth.existingSecret }}
{{- .Values.redis.auth.existingSecret }}
{{- else }}
{{- printf "%s-redis-auth" (include "visit-tracker.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}

{{/* Standalone host: the dev Redis Service when it is on and no host is given. */}}
{{- define "visit-tracker.redisHost" -}}
{{- if .Values.redis.host }}
{{- .Values.redis.host }}
{{- else if .Values.devRedis.enabled }}
{{- include "visit-tracker.redisFullname" . }}
{{- else }}
{{- fail "redis.host is required in standalone mode unless devRedis.enabled is true" }}
{{- end }}
{{- end }}

{{/*
Redis ports the pods may reach: the standalone port, Sentinel's and the ports in Sentinel and
Cluster addresses, so the NetworkPolicy follows whatever mode is configured.
*/}}
{{- define "visit-tracker.redisPorts" -}}
{{- $ports := list (int .Values.redis.port) }}
{{- if eq .Values.redis.mode "sentinel" }}
{{- range .Values.redis.sentinel.addresses }}{{ $ports = append $ports (int (last (splitList ":" .))) }}{{ end }}
{{- end }}
{{- if eq .Values.redis.mode "cluster" }}
{{- range .Values.redis.cluster.nodes }}{{ $ports = append $ports (int (last (splitList ":" .))) }}{{ end }}
{{- /* Cluster redirects go to the seed's port on other nodes; the bus port is not for clients. */}}
{{- end }}
{{- toJson ($ports | uniq | sortAlpha) }}
{{- end }}

{{/* Prometheus selector the alert rules and dashboard share: the monitors set `job` to this. */}}
{{- define "visit-tracker.promSelector" -}}
job="{{ include "visit-tracker.fullname" . }}", namespace="{{ .Release.Namespace }}"
{{- end }}

{{/*
A Kubernetes quantity (`500m`, `128Mi`, `1`) as a plain number, so the chart can refuse requests
above limits before the API server does (halfway through an upgrade).
*/}}
{{- define "visit-tracker.quantity" -}}
{{- $q := toString . }}
{{- $suffix := regexFind "[A-Za-z]+$" $q }}
{{- $factors := dict "" 1.0 "m" 0.001 "k" 1000.0 "M" 1000000.0 "G" 1000000000.0 "T" 1000000000000.0 "Ki" 1024.0 "Mi" 1048576.0 "Gi" 1073741824.0 "Ti" 1099511627776.0 }}
{{- mulf (trimSuffix $suffix $q | float64) (get $factors $suffix) }}
{{- end }}

{{/* Fails when a resource request is above its limit (`what` names the values key). */}}
{{- define "visit-tracker.requestsWithinLimits" -}}
{{- $what := index . 0 }}
{{- $resources := index . 1 }}
{{- range $name, $request := ($resources.requests | default dict) }}
{{- $limit := get ($resources.limits | default dict) $name }}
{{- if and $limit (gt (include "visit-tracker.quantity" $request | float64) (include "visit-tracker.quantity" $limit | float64)) }}
{{- fail (printf "%s.requests.%s (%v) is above %s.limits.%s (%v)" $what $name $request $what $name $limit) }}
{{- end }}
{{- end }}
{{- end }}
