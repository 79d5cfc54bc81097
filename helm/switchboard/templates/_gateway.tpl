{{/* The ext_proc container: a native sidecar (init container) or a regular one. */}}
{{- define "switchboard.extProcContainer" -}}
{{- $g := .Values.gateway -}}
- name: ext-proc
  image: {{ include "switchboard.image" . }}
  imagePullPolicy: {{ .Values.image.pullPolicy }}
  {{- if $g.extProc.nativeSidecar }}
  restartPolicy: Always
  {{- end }}
  args:
    - ext-proc
    - --workers={{ int $g.extProc.workers }}
    - --socket-dir={{ $g.extProc.socketDir }}
    - --xds-address={{ include "switchboard.xdsAddress" . }}
    - --health-port={{ int $g.extProc.healthPort }}
    - --envoy-admin-port={{ int $g.envoy.adminPort }}
    - --state-dir=/var/lib/switchboard
    {{- range $g.extProc.extraArgs }}
    - {{ . | quote }}
    {{- end }}
  env:
    - name: SWITCHBOARD_SECRETS_DIR
      value: {{ .Values.providerSecrets.mountPath | quote }}
    {{- with include "switchboard.redis.env" . | trim }}{{ . | nindent 4 }}{{ end }}
    {{- with $g.extProc.extraEnv }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  ports:
    - name: health
      containerPort: {{ int $g.extProc.healthPort }}
      protocol: TCP
  startupProbe:
    httpGet:
      path: /healthz
      port: health
    {{- toYaml $g.extProc.startupProbe | nindent 4 }}
  readinessProbe:
    httpGet:
      path: /healthz
      port: health
    {{- toYaml $g.extProc.readinessProbe | nindent 4 }}
  livenessProbe:
    httpGet:
      path: /healthz
      port: health
    {{- toYaml $g.extProc.livenessProbe | nindent 4 }}
  {{- if not $g.extProc.nativeSidecar }}
  lifecycle:
    preStop:
      # Keep serving Envoy's in-flight requests until Envoy has drained and exited.
      exec:
        command:
          - /bin/bash
          - -c
          - |
            {{- include "switchboard.extProcDrainScript" $g.envoy | nindent 12 }}
  {{- end }}
  resources:
    {{- toYaml $g.extProc.resources | nindent 4 }}
  securityContext:
    {{- toYaml .Values.securityContext | nindent 4 }}
  volumeMounts:
    - name: sockets
      mountPath: {{ $g.extProc.socketDir }}
    - name: tmp
      mountPath: /tmp
    - name: state
      mountPath: /var/lib/switchboard
    {{- range $i, $name := .Values.providerSecrets.names }}
    - name: provider-secret-{{ $i }}
      mountPath: {{ printf "%s/%s" $.Values.providerSecrets.mountPath $name }}
      readOnly: true
    {{- end }}
{{- end }}
