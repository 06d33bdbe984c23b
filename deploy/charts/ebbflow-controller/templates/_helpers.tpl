{{- define "ebbflow-controller.name" -}}
{{- .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "ebbflow-controller.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 50 | trimSuffix "-" -}}
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
