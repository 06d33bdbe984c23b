{{/* The chart's name (nameOverride replaces it): app.kubernetes.io/name, and part of fullname. */}}
{{- define "ebbflow-controller.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/*
The name of every object the chart creates (suffixed where it creates several of a kind):
fullnameOverride, else the release name when it already holds the chart's name, else
<release>-<name>. At most 50 characters, so suffixes and pod names stay within 63.
*/}}
{{- define "ebbflow-controller.fullname" -}}
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

{{/* The headless Service that gives every replica its stable DNS name. */}}
{{- define "ebbflow-controller.peers" -}}
{{- printf "%s-peers" (include "ebbflow-controller.fullname" .) -}}
{{- end -}}

{{- define "ebbflow-controller.selectorLabels" -}}
app.kubernetes.io/name: {{ include "ebbflow-controller.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "ebbflow-controller.labels" -}}
{{ include "ebbflow-controller.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{- define "ebbflow-controller.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "ebbflow-controller.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* Quorum of the Raft group: floor(replicas/2)+1. */}}
{{- define "ebbflow-controller.quorum" -}}
{{- add (div (int .Values.replicas) 2) 1 -}}
{{- end -}}

{{- define "ebbflow-controller.scheme" -}}
{{- if .Values.insecure }}http{{ else }}https{{ end -}}
{{- end -}}

{{/* The client Service's DNS names, for the replicas' certificates. */}}
{{- define "ebbflow-controller.serviceNames" -}}
{{- $svc := include "ebbflow-controller.fullname" . -}}
{{- $ns := .Release.Namespace -}}
{{- printf "%s,%s.%s,%s.%s.svc,%s.%s.svc.%s" $svc $svc $ns $svc $ns $svc $ns .Values.clusterDomain -}}
{{- end -}}

{{/* The API's URL for clients: apiUrl, else the client Service. */}}
{{- define "ebbflow-controller.apiUrl" -}}
{{- if .Values.apiUrl -}}
{{- .Values.apiUrl | trimSuffix "/" -}}
{{- else -}}
{{- printf "%s://%s.%s.svc:%v" (include "ebbflow-controller.scheme" .) (include "ebbflow-controller.fullname" .) .Release.Namespace .Values.service.port -}}
{{- end -}}
{{- end -}}

{{/* The Secret holding the CA of the API's certificate (key ca.crt). */}}
{{- define "ebbflow-controller.apiCASecret" -}}
{{- if .Values.tls.enabled }}{{ .Values.tls.secretName }}{{ else }}{{ .Values.pki.secretName }}{{ end -}}
{{- end -}}
