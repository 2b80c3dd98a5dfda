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

{{/* dagmm.natsEnv is the NATS URL, from a Secret when urlSecret.name is set, and the credentials and TLS files (see dagmm.natsVolume). */}}
{{- define "dagmm.natsEnv" -}}
{{- $a := .Values.nats.auth -}}
{{- $t := .Values.nats.tls -}}
{{- $ways := 0 -}}
{{- range (list $a.token.secretName $a.user $a.nkey.secretName $a.creds.secretName) }}{{ if . }}{{ $ways = add1 $ways }}{{ end }}{{ end -}}
{{- if gt $ways 1 }}{{ fail "nats.auth: set one of token, user, nkey and creds" }}{{ end -}}
- name: DAGMM_NATS_URL
{{- if .Values.nats.urlSecret.name }}
  valueFrom:
    secretKeyRef:
      name: {{ .Values.nats.urlSecret.name }}
      key: {{ .Values.nats.urlSecret.key }}
{{- else }}
  value: {{ required "nats.url or nats.urlSecret.name is required" .Values.nats.url | quote }}
{{- end }}
{{- if $a.token.secretName }}
- name: DAGMM_NATS_TOKEN
  valueFrom:
    secretKeyRef:
      name: {{ $a.token.secretName }}
      key: {{ $a.token.key }}
{{- end }}
{{- if $a.user }}
- name: DAGMM_NATS_USER
  value: {{ $a.user | quote }}
- name: DAGMM_NATS_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ required "nats.auth.password.secretName is required with nats.auth.user" $a.password.secretName }}
      key: {{ $a.password.key }}
{{- end }}
{{- if $a.creds.secretName }}
- name: DAGMM_NATS_CREDS
  value: /etc/dagmm/nats/user.creds
{{- end }}
{{- if $a.nkey.secretName }}
- name: DAGMM_NATS_NKEY
  value: /etc/dagmm/nats/user.nk
{{- end }}
{{- if $t.ca.secretName }}
- name: DAGMM_NATS_TLS_CA
  value: /etc/dagmm/nats/ca.crt
{{- end }}
{{- if $t.clientCert.secretName }}
- name: DAGMM_NATS_TLS_CERT
  value: /etc/dagmm/nats/tls.crt
- name: DAGMM_NATS_TLS_KEY
  value: /etc/dagmm/nats/tls.key
{{- end }}
{{- end }}

{{/* dagmm.natsFiles reports whether a credentials or TLS file is mounted. */}}
{{- define "dagmm.natsFiles" -}}
{{- if or .Values.nats.auth.creds.secretName .Values.nats.auth.nkey.secretName .Values.nats.tls.ca.secretName .Values.nats.tls.clientCert.secretName }}yes{{ end }}
{{- end }}

{{/* dagmm.natsVolume is a projected volume of the Secrets' credentials and TLS files, read by the owner only; nothing when none is set. */}}
{{- define "dagmm.natsVolume" -}}
{{- if include "dagmm.natsFiles" . }}
{{- $a := .Values.nats.auth -}}
{{- $t := .Values.nats.tls }}
- name: nats-auth
  projected:
    defaultMode: 0400
    sources:
      {{- if $a.creds.secretName }}
      - secret:
          name: {{ $a.creds.secretName }}
          items: [{key: {{ $a.creds.key | quote }}, path: user.creds}]
      {{- end }}
      {{- if $a.nkey.secretName }}
      - secret:
          name: {{ $a.nkey.secretName }}
          items: [{key: {{ $a.nkey.key | quote }}, path: user.nk}]
      {{- end }}
      {{- if $t.ca.secretName }}
      - secret:
          name: {{ $t.ca.secretName }}
          items: [{key: {{ $t.ca.key | quote }}, path: ca.crt}]
      {{- end }}
      {{- if $t.clientCert.secretName }}
      - secret:
          name: {{ $t.clientCert.secretName }}
          items: [{key: tls.crt, path: tls.crt}, {key: tls.key, path: tls.key}]
      {{- end }}
{{- end }}
{{- end }}

{{/* dagmm.natsVolumeMount mounts dagmm.natsVolume read-only; nothing when none is set. */}}
{{- define "dagmm.natsVolumeMount" -}}
{{- if include "dagmm.natsFiles" . }}
- name: nats-auth
  mountPath: /etc/dagmm/nats
  readOnly: true
{{- end }}
{{- end }}

{{/* dagmm.fleetArgs are the flags naming and sizing the fleet's streams and buckets, shared by serve --fleet and dagmm trainer. */}}
{{- define "dagmm.fleetArgs" -}}
{{- $f := .Values.fleet -}}
- --registry-objects={{ $f.registry.objects }}
- --registry-index={{ $f.registry.index }}
- --registry-max-bytes={{ int64 $f.registry.maxBytes }}
- --history-max-bytes={{ int64 $f.history.maxBytes }}
- --jobs-stream={{ $f.jobs.stream }}
- --stream-replicas={{ $f.streamReplicas }}
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
{{- fail (printf "model.source %q: want configMap, persistentVolumeClaim, existingClaim, registry (single mode) or none (fleet mode)" .Values.model.source) }}
{{- end }}
{{- end }}
