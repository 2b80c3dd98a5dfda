{{/* dagmm.name is the chart's name, or nameOverride. */}}
{{- define "dagmm.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* dagmm.fullname is the release's name for its objects. */}}
{{- define "dagmm.fullname" -}}
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

{{- define "dagmm.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "dagmm.labels" -}}
helm.sh/chart: {{ include "dagmm.chart" . }}
app.kubernetes.io/name: {{ include "dagmm.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: dagmm
{{- end }}

{{/* dagmm.selectorLabels takes a dict: root (the chart's context) and component. */}}
{{- define "dagmm.selectorLabels" -}}
app.kubernetes.io/name: {{ include "dagmm.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "dagmm.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "dagmm.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "dagmm.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{/* dagmm.podSecurityContext meets the restricted Pod Security Standard; 65532 is the image's user. */}}
{{- define "dagmm.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 65532
runAsGroup: 65532
fsGroup: 65532
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{- define "dagmm.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
runAsNonRoot: true
capabilities:
  drop: [ALL]
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{/* dagmm.natsEnv is the NATS URL, from a Secret when urlSecret.name is set. */}}
{{- define "dagmm.natsEnv" -}}
- name: DAGMM_NATS_URL
{{- if .Values.nats.urlSecret.name }}
  valueFrom:
    secretKeyRef:
      name: {{ .Values.nats.urlSecret.name }}
      key: {{ .Values.nats.urlSecret.key }}
{{- else }}
  value: {{ required "nats.url or nats.urlSecret.name is required" .Values.nats.url | quote }}
{{- end }}
{{- end }}

{{/* dagmm.modelVolume is the volume holding the model file. */}}
{{- define "dagmm.modelVolume" -}}
- name: model
{{- if eq .Values.model.source "configMap" }}
  configMap:
    name: {{ default (printf "%s-model" (include "dagmm.fullname" .)) .Values.model.configMap.name }}
{{- else if eq .Values.model.source "persistentVolumeClaim" }}
  persistentVolumeClaim:
    claimName: {{ include "dagmm.fullname" . }}-model
{{- else if eq .Values.model.source "existingClaim" }}
  persistentVolumeClaim:
    claimName: {{ required "model.existingClaim is required with model.source existingClaim" .Values.model.existingClaim }}
{{- else }}
{{- fail (printf "model.source %q: want configMap, persistentVolumeClaim or existingClaim" .Values.model.source) }}
{{- end }}
{{- end }}
