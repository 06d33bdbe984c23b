{{/* Labels common to every object of the chart. */}}
{{- define "cilium.labels" -}}
app.kubernetes.io/part-of: cilium
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ .Chart.Name }}-{{ .Chart.Version }}
{{- end }}
