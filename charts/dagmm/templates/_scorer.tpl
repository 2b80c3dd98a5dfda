{{/* dagmm.fleet reports whether the release runs in fleet mode. */}}
{{- define "dagmm.fleet" -}}
{{- if eq .Values.mode "fleet" }}yes{{ else if ne .Values.mode "single" }}{{ fail (printf "mode %q: want single or fleet" .Values.mode) }}{{ end }}
{{- end }}

{{/* dagmm.partitioned reports whether the scorers are a StatefulSet of partitions. */}}
{{- define "dagmm.partitioned" -}}
{{- if gt (int .Values.scorer.partitions) 1 }}
{{- if not (include "dagmm.fleet" .) }}{{ fail "scorer.partitions > 1 needs mode fleet" }}{{ end }}
{{- if .Values.scorer.autoscaling.enabled }}{{ fail "scorer.partitions > 1: one scorer per partition, so scorer.autoscaling cannot be enabled" }}{{ end }}
{{- if not .Values.scorer.jetstream.enabled }}{{ fail "scorer.partitions > 1 needs scorer.jetstream.enabled" }}{{ end -}}
yes
{{- end }}
{{- end }}

{{/* dagmm.hasModelFile reports whether the scorers mount a model file. */}}
{{- define "dagmm.hasModelFile" -}}
{{- if eq .Values.model.source "none" }}
{{- if not (include "dagmm.fleet" .) }}{{ fail "model.source none needs mode fleet: in single mode the scorers need a model file or model.source registry" }}{{ end }}
{{- else if eq .Values.model.source "registry" }}
{{- if include "dagmm.fleet" . }}{{ fail "model.source registry is for mode single: in fleet mode every host's model comes from the registry already" }}{{ end }}
{{- else }}yes{{ end }}
{{- end }}

{{/* dagmm.scorerPod is the scorers' pod template, for the Deployment and the StatefulSet of partitions. */}}
{{- define "dagmm.scorerPod" -}}
{{- $sc := .Values.scorer -}}
{{- $fleet := include "dagmm.fleet" . -}}
metadata:
  labels:
    {{- include "dagmm.selectorLabels" (dict "root" . "component" "scorer") | nindent 4 }}
    {{- with $sc.podLabels }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  {{- with $sc.podAnnotations }}
  annotations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
spec:
  serviceAccountName: {{ include "dagmm.serviceAccountName" . }}
  automountServiceAccountToken: false
  {{- with .Values.imagePullSecrets }}
  imagePullSecrets:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with $sc.priorityClassName }}
  priorityClassName: {{ . }}
  {{- end }}
  # Longer than preStopSleepSeconds plus serve's drain (--shutdown-timeout
  # for the consumers, then again for HTTP and the NATS connection).
  terminationGracePeriodSeconds: {{ $sc.terminationGracePeriodSeconds }}
  securityContext:
    {{- include "dagmm.podSecurityContext" . | nindent 4 }}
  containers:
    - name: scorer
      image: {{ include "dagmm.image" . }}
      imagePullPolicy: {{ .Values.image.pullPolicy }}
      args:
        - serve
        {{- if include "dagmm.hasModelFile" . }}
        - --model=/model/{{ .Values.model.file }}
        - --poll={{ $sc.poll }}
        {{- end }}
        {{- if eq .Values.model.source "registry" }}
        - --model-from-registry={{ required "model.registry.key is required with model.source registry" .Values.model.registry.key }}
        - --registry-objects={{ .Values.fleet.registry.objects }}
        - --registry-index={{ .Values.fleet.registry.index }}
        {{- end }}
        - --model-name={{ $sc.modelName }}
        - --http=:8080
        - --shutdown-timeout={{ $sc.shutdownTimeout }}
        {{- with $sc.subject }}
        - --subject={{ . }}
        {{- end }}
        - --anomaly-prefix={{ $sc.anomalyPrefix }}
        - --dead-letter={{ $sc.deadLetter }}
        - --queue={{ $sc.queue }}
        {{- if $sc.scores }}
        - --scores
        {{- end }}
        {{- if $sc.jetstream.enabled }}
        - --jetstream
        {{- if not $fleet }}
        - --stream={{ $sc.jetstream.stream }}
        {{- end }}
        - --consumer={{ $sc.jetstream.consumer }}
        {{- with $sc.jetstream.eventStream }}
        - --event-stream={{ . }}
        {{- end }}
        {{- end }}
        {{- if $fleet }}
        - --fleet
        - --history-stream={{ .Values.fleet.history.stream }}
        - --history-max={{ int64 .Values.fleet.history.maxPerHost }}
        - --fleet-model={{ .Values.fleet.fleetModel }}
        - --model-cache={{ .Values.fleet.modelCache }}
        {{- include "dagmm.fleetArgs" . | nindent 8 }}
        {{- end }}
        {{- if $sc.telegraf.enabled }}
        - --telegraf
        {{- with $sc.telegraf.interval }}
        - --interval={{ . }}
        {{- end }}
        {{- end }}
        - --log-level={{ $sc.logLevel }}
        {{- range $sc.extraArgs }}
        - {{ . | quote }}
        {{- end }}
      env:
        {{- include "dagmm.natsEnv" . | nindent 8 }}
        {{- if include "dagmm.partitioned" . }}
        # Each pod scores one partition of the hosts: its index in the
        # StatefulSet, a label Kubernetes 1.28 and later set.
        - name: DAGMM_PARTITIONS
          value: {{ $sc.partitions | quote }}
        - name: DAGMM_PARTITION
          valueFrom:
            fieldRef:
              fieldPath: metadata.labels['apps.kubernetes.io/pod-index']
        {{- end }}
        {{- if $sc.adminToken.secretName }}
        - name: DAGMM_ADMIN_TOKEN
          valueFrom:
            secretKeyRef:
              name: {{ $sc.adminToken.secretName }}
              key: {{ $sc.adminToken.key }}
        {{- end }}
        {{- with $sc.extraEnv }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      ports:
        - name: http
          containerPort: 8080
          protocol: TCP
      livenessProbe:
        httpGet:
          path: /v2/health/live
          port: http
        {{- toYaml $sc.livenessProbe | nindent 8 }}
      readinessProbe:
        httpGet:
          path: /v2/health/ready
          port: http
        {{- toYaml $sc.readinessProbe | nindent 8 }}
      {{- if $sc.preStopSleepSeconds }}
      # Endpoints drop the pod while it still serves; then SIGTERM drains it.
      lifecycle:
        preStop:
          sleep:
            seconds: {{ $sc.preStopSleepSeconds }}
      {{- end }}
      resources:
        {{- toYaml $sc.resources | nindent 8 }}
      securityContext:
        {{- include "dagmm.containerSecurityContext" . | nindent 8 }}
      volumeMounts:
        {{- if include "dagmm.hasModelFile" . }}
        - name: model
          mountPath: /model
          readOnly: true
        {{- end }}
        {{- include "dagmm.natsVolumeMount" . | nindent 8 }}
        - name: tmp
          mountPath: /tmp
  volumes:
    {{- if include "dagmm.hasModelFile" . }}
    {{- include "dagmm.modelVolume" . | nindent 4 }}
    {{- end }}
    {{- include "dagmm.natsVolume" . | nindent 4 }}
    - name: tmp
      emptyDir: {}
  {{- with $sc.nodeSelector }}
  nodeSelector:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with $sc.affinity }}
  affinity:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with $sc.tolerations }}
  tolerations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with $sc.topologySpreadConstraints }}
  topologySpreadConstraints:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- end }}
