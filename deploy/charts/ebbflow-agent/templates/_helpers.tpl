{{- define "ebbflow-agent.name" -}}
{{- .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "ebbflow-agent.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 50 | trimSuffix "-" -}}
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
