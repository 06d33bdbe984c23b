{{/* The chart's name (nameOverride replaces it): app.kubernetes.io/name, and part of fullname. */}}
{{- define "ebbflow-agent.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/*
The name of every object the chart creates (suffixed where it creates several of a kind):
fullnameOverride, else the release name when it already holds the chart's name, else
<release>-<name>. At most 50 characters, so suffixes and pod names stay within 63.
*/}}
{{- define "ebbflow-agent.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 50 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 50 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "ebbflow-agent.selectorLabels" -}}
app.kubernetes.io/name: {{ include "ebbflow-agent.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "ebbflow-agent.labels" -}}
{{ include "ebbflow-agent.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{- define "ebbflow-agent.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "ebbflow-agent.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* "true" when the identity lives on a volume only one node can mount at a time. */}}
{{- define "ebbflow-agent.identityRWO" -}}
{{- if and .Values.identity.persistence.enabled (not (has "ReadWriteMany" .Values.identity.persistence.accessModes)) }}true{{ end -}}
{{- end -}}
