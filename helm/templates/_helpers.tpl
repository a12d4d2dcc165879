{{/* Labels every object of the chart carries. */}}
{{- define "f2s.labels" -}}
app.kubernetes.io/name: f2s
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: f2s
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end }}

{{/* The control plane's pods (Deployment selector, Service, PDB, Prometheus discovery). */}}
{{- define "f2s.selector" -}}
app.kubernetes.io/name: f2s
app.kubernetes.io/component: control-plane
{{- end }}

{{- define "f2s.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end }}

{{- define "f2s.prometheusUrl" -}}
http://f2s-prometheus.{{ .Values.namespace }}:9090
{{- end }}

{{/*
config.yaml: .Values.config, plus the in-chart Prometheus as prometheus.url and (with
prometheus.autoscaling) as the autoscaler's source, unless the values set them.
*/}}
{{- define "f2s.config" -}}
{{- $c := deepCopy .Values.config -}}
{{- if .Values.prometheus.enabled -}}
{{- $prom := get $c "prometheus" | default dict -}}
{{- if not (get $prom "url") -}}
{{- $_ := set $prom "url" (include "f2s.prometheusUrl" .) -}}
{{- end -}}
{{- $_ := set $c "prometheus" $prom -}}
{{- if .Values.prometheus.autoscaling -}}
{{- $f2s := get $c "f2s" | default dict -}}
{{- $as := get $f2s "autoscaling" | default dict -}}
{{- if not (hasKey $as "source") -}}
{{- $_ := set $as "source" "prometheus" -}}
{{- end -}}
{{- $_ := set $f2s "autoscaling" $as -}}
{{- $_ := set $c "f2s" $f2s -}}
{{- end -}}
{{- end -}}
{{- toYaml $c -}}
{{- end }}

{{/*
Pod Security "restricted" for every pod of the chart: $uid is the image's non-root user
(10001 for F2S's images).
*/}}
{{- define "f2s.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: {{ .uid }}
runAsGroup: {{ .uid }}
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{/* The containers': nothing to escalate to, no capabilities, and (unless readOnly is false) a read-only root. */}}
{{- define "f2s.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: {{ if hasKey . "readOnly" }}{{ .readOnly }}{{ else }}true{{ end }}
capabilities:
  drop: [ALL]
{{- end }}
