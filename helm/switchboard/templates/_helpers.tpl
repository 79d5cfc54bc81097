{{/* Chart name, truncated to a DNS label. */}}
{{- define "switchboard.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Release-scoped prefix of every resource name; leaves room for the longest suffix. */}}
{{- define "switchboard.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 40 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 40 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 40 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "switchboard.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Selector labels of one component: include with (dict "ctx" $ "component" "gateway"). */}}
{{- define "switchboard.selectorLabels" -}}
app.kubernetes.io/name: {{ include "switchboard.name" .ctx }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{/* Full label set of one component. */}}
{{- define "switchboard.labels" -}}
helm.sh/chart: {{ include "switchboard.chart" .ctx }}
{{ include "switchboard.selectorLabels" . }}
app.kubernetes.io/version: {{ .ctx.Chart.AppVersion | quote }}
app.kubernetes.io/part-of: switchboard
app.kubernetes.io/managed-by: {{ .ctx.Release.Service }}
{{- with .ctx.Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{- define "switchboard.image" -}}
{{- $tag := default .Chart.AppVersion .Values.image.tag }}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository $tag }}
{{- end }}
{{- end }}

{{- define "switchboard.gateway.fullname" -}}
{{- printf "%s-gateway" (include "switchboard.fullname" .) }}
{{- end }}

{{- define "switchboard.controlPlane.fullname" -}}
{{- printf "%s-control-plane" (include "switchboard.fullname" .) }}
{{- end }}

{{- define "switchboard.redis.fullname" -}}
{{- printf "%s-redis" (include "switchboard.fullname" .) }}
{{- end }}

{{- define "switchboard.gateway.serviceAccountName" -}}
{{- if .Values.gateway.serviceAccount.create }}
{{- default (include "switchboard.gateway.fullname" .) .Values.gateway.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.gateway.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "switchboard.controlPlane.serviceAccountName" -}}
{{- if .Values.controlPlane.serviceAccount.create }}
{{- default (include "switchboard.controlPlane.fullname" .) .Values.controlPlane.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.controlPlane.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* Name of the ConfigMap holding the policy, whoever manages it. */}}
{{- define "switchboard.policy.configMapName" -}}
{{- default (printf "%s-policy" (include "switchboard.fullname" .)) .Values.policy.existingConfigMap }}
{{- end }}

{{- define "switchboard.leaseName" -}}
{{- default (include "switchboard.controlPlane.fullname" .) .Values.controlPlane.leaderElection.leaseName }}
{{- end }}

{{- define "switchboard.leaderElection.enabled" -}}
{{- if gt (int .Values.controlPlane.replicas) 1 }}true{{ end }}
{{- end }}

{{/* host:port of the control plane's xDS server. */}}
{{- define "switchboard.xdsAddress" -}}
{{- printf "%s.%s.svc.%s:%d" (include "switchboard.controlPlane.fullname" .) .Release.Namespace .Values.clusterDomain (int .Values.controlPlane.xdsPort) }}
{{- end }}

{{/* "true" when budgets are shared through Redis. */}}
{{- define "switchboard.redis.configured" -}}
{{- if or .Values.redis.enabled .Values.redis.externalUrl .Values.redis.existingSecret.name }}true{{ end }}
{{- end }}

{{/* The SWITCHBOARD_REDIS_URL variable, when Redis is configured. */}}
{{- define "switchboard.redis.env" -}}
{{- if .Values.redis.existingSecret.name }}
- name: SWITCHBOARD_REDIS_URL
  valueFrom:
    secretKeyRef:
      name: {{ .Values.redis.existingSecret.name }}
      key: {{ .Values.redis.existingSecret.key }}
{{- else if .Values.redis.externalUrl }}
- name: SWITCHBOARD_REDIS_URL
  value: {{ .Values.redis.externalUrl | quote }}
{{- else if .Values.redis.enabled }}
- name: SWITCHBOARD_REDIS_URL
  value: {{ printf "redis://%s.%s.svc.%s:6379/0" (include "switchboard.redis.fullname" .) .Release.Namespace .Values.clusterDomain | quote }}
{{- end }}
{{- end }}

{{/*
A shell command that sends one HTTP/1.1 request to Envoy's admin interface on 127.0.0.1 and
succeeds only on a 200 answer. Envoy's admin listens on loopback only, which the kubelet cannot
reach, so probes and the drain hook run inside the container (bash's /dev/tcp: no extra tools).
Include with (dict "port" 9901 "method" "GET" "path" "/ready").
*/}}
{{- define "switchboard.envoyAdminRequest" -}}
exec 3<>/dev/tcp/127.0.0.1/{{ .port }} && printf '{{ .method }} {{ .path }} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\nConnection: close\r\n\r\n' >&3 && read -r _ status _ <&3 && [ "$status" = 200 ]
{{- end }}

{{/*
Envoy's preStop hook (a bash script). It starts the drain: for drainSeconds Envoy keeps accepting
connections but answers each with Connection: close (HTTP/1.1) or GOAWAY (HTTP/2), while the
endpoint controllers take the pod out of every Service and load balancer. It then waits
minDrainSeconds whatever happens (the time those updates take), and from then on returns as soon
as no request is in flight, at the latest after drainSeconds. Only then does the kubelet send
SIGTERM, and Envoy exits. Include with the gateway values' envoy section.
*/}}
{{- define "switchboard.envoyDrainScript" -}}
admin() {
  exec 3<>/dev/tcp/127.0.0.1/{{ int .adminPort }} || return 1
  printf '%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\nConnection: close\r\n\r\n' "$1" "$2" >&3
  cat <&3
}
in_flight() {
  admin GET '/stats?filter=http.switchboard.downstream_rq_active' |
    while read -r name value; do
      [ "$name" = http.switchboard.downstream_rq_active: ] && echo "$value"
    done
}
admin POST '/drain_listeners?graceful' >/dev/null || exit 0
end=$((SECONDS + {{ int .drainSeconds }}))
sleep {{ min (int .minDrainSeconds) (int .drainSeconds) }}
while [ "$SECONDS" -lt "$end" ]; do
  n=$(in_flight)
  [ "${n:-0}" -gt 0 ] 2>/dev/null || break
  sleep 1
done
{{- end }}

{{/*
The preStop hook of ext_proc when it runs as a regular container: keep serving until Envoy has
exited (its admin port stops answering), at the latest a little after Envoy's drain.
*/}}
{{- define "switchboard.extProcDrainScript" -}}
end=$((SECONDS + {{ add (int .drainSeconds) 2 }}))
while [ "$SECONDS" -lt "$end" ] && (exec 3<>/dev/tcp/127.0.0.1/{{ int .adminPort }}) 2>/dev/null; do
  sleep 1
done
{{- end }}

{{/* An exec probe against Envoy's admin: include with (dict "port" .. "path" .. "probe" <timings>). */}}
{{- define "switchboard.envoyAdminProbe" -}}
exec:
  command:
    - /bin/bash
    - -c
    - {{ include "switchboard.envoyAdminRequest" (dict "port" .port "method" "GET" "path" .path) | quote }}
{{ toYaml .probe }}
{{- end }}

{{/* Topology spread constraints with the component's selector filled in when omitted. */}}
{{- define "switchboard.topologySpread" -}}
{{- $selector := include "switchboard.selectorLabels" (dict "ctx" .ctx "component" .component) | fromYaml }}
{{- range .constraints }}
- {{ toYaml (merge (deepCopy .) (dict "labelSelector" (dict "matchLabels" $selector))) | nindent 2 | trim }}
{{- end }}
{{- end }}

{{/* Fail rendering on combinations that would deploy something broken. */}}
{{- define "switchboard.validate" -}}
{{- $g := .Values.gateway }}
{{- if and (or (gt (int $g.replicas) 1) $g.autoscaling.enabled) (not (include "switchboard.redis.configured" .)) (not $g.allowPerPodBudgets) }}
{{- fail "several gateway pods need shared budgets: set redis.enabled, redis.externalUrl or redis.existingSecret.name (or gateway.allowPerPodBudgets=true to accept per-pod limits)" }}
{{- end }}
{{- if le (int $g.terminationGracePeriodSeconds) (add (int $g.envoy.drainSeconds) 5) }}
{{- fail (printf "gateway.terminationGracePeriodSeconds (%d) must exceed gateway.envoy.drainSeconds (%d) by more than 5 seconds" (int $g.terminationGracePeriodSeconds) (int $g.envoy.drainSeconds)) }}
{{- end }}
{{- if not .Values.policy.existingConfigMap }}
{{- range $file, $text := .Values.policy.files }}
{{- if not (or (hasSuffix ".yaml" $file) (hasSuffix ".yml" $file)) }}
{{- fail (printf "policy.files: %q must end in .yaml or .yml" $file) }}
{{- end }}
{{- if and (include "switchboard.redis.configured" $) (regexMatch "(?m)^state\\s*:" $text) (regexMatch "backend\\s*:\\s*[\"']?sqlite" $text) }}
{{- fail (printf "policy file %s declares state.backend sqlite, but Redis is configured for shared budgets: remove state.backend (the chart's Redis is then used) or declare backend: redis" $file) }}
{{- end }}
{{- range regexFindAll "secret:[a-z0-9]([-a-z0-9.]*[a-z0-9])?/" $text -1 }}
{{- $secret := trimSuffix "/" (trimPrefix "secret:" .) }}
{{- if not (has $secret $.Values.providerSecrets.names) }}
{{- fail (printf "policy file %s refers to Secret %q: add it to providerSecrets.names so it is mounted" $file $secret) }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}
