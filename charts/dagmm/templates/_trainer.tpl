{{/* dagmm.trainerPod is the pod template of dagmm trainer; takes a dict: root (the chart's context), component (trainer or scheduler) and v (its values). */}}
{{- define "dagmm.trainerPod" -}}
{{- $ := .root -}}
{{- $v := .v -}}
{{- $tr := $.Values.trainer -}}
metadata:
  labels:
    {{- include "dagmm.selectorLabels" (dict "root" $ "component" .component) | nindent 4 }}
    {{- with $v.podLabels }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  {{- with $v.podAnnotations }}
  annotations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
spec:
  serviceAccountName: {{ include "dagmm.serviceAccountName" $ }}
  automountServiceAccountToken: false
  {{- with $.Values.imagePullSecrets }}
  imagePullSecrets:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  # A trainer stopped mid-job leaves it to another after ackWait; the
  # grace period lets a short training finish instead.
  terminationGracePeriodSeconds: {{ $v.terminationGracePeriodSeconds }}
  securityContext:
    {{- include "dagmm.podSecurityContext" $ | nindent 4 }}
  containers:
    - name: {{ .component }}
      image: {{ include "dagmm.image" $ }}
      imagePullPolicy: {{ $.Values.image.pullPolicy }}
      args:
        - trainer
        {{- if eq .component "scheduler" }}
        - --schedule
        - --schedule-every={{ $v.every }}
        - --retrain={{ $v.retrain }}
        {{- end }}
        - --stream={{ $.Values.fleet.history.stream }}
        {{- with $.Values.scorer.subject }}
        - --subject={{ . }}
        {{- end }}
        - --history={{ int64 $.Values.fleet.history.maxPerHost }}
        {{- include "dagmm.fleetArgs" $ | nindent 8 }}
        - --consumer={{ $tr.consumer }}
        - --ack-wait={{ $tr.ackWait }}
        - --min-samples={{ $tr.minSamples }}
        {{- with $.Values.scorer.jetstream.eventStream }}
        - --event-stream={{ . }}
        - --anomaly-prefix={{ $.Values.scorer.anomalyPrefix }}
        {{- end }}
        {{- range $tr.extraArgs }}
        - {{ . | quote }}
        {{- end }}
      env:
        {{- include "dagmm.natsEnv" $ | nindent 8 }}
        {{- with $v.extraEnv }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      resources:
        {{- toYaml $v.resources | nindent 8 }}
      securityContext:
        {{- include "dagmm.containerSecurityContext" $ | nindent 8 }}
      volumeMounts:
        {{- include "dagmm.natsVolumeMount" $ | nindent 8 }}
        - name: tmp
          mountPath: /tmp
  volumes:
    {{- include "dagmm.natsVolume" $ | nindent 4 }}
    - name: tmp
      emptyDir: {}
  {{- with $v.nodeSelector }}
  nodeSelector:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with $v.affinity }}
  affinity:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with $v.tolerations }}
  tolerations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- end }}
