{{/*
Names and labels. The sidecar templates below read only .Values, .Release.Name, .Release.Service,
.Chart.Name, .Chart.Version and .Chart.AppVersion, so a parent chart can call them with
  (dict "Values" (index .Values "iap-proxy") "Release" .Release "Chart" (dict "Name" "iap-proxy" "Version" "0.1.0" "AppVersion" "0.1.0"))
*/}}
{{- define "iap-proxy.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "iap-proxy.fullname" -}}
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

{{- define "iap-proxy.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "iap-proxy.selectorLabels" -}}
app.kubernetes.io/name: {{ include "iap-proxy.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "iap-proxy.labels" -}}
helm.sh/chart: {{ include "iap-proxy.chart" . }}
{{ include "iap-proxy.selectorLabels" . }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | quote }}
app.kubernetes.io/component: auth-proxy
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "iap-proxy.configMapName" -}}
{{- include "iap-proxy.fullname" . }}
{{- end }}

{{- define "iap-proxy.backendConfigName" -}}
{{- .Values.backendConfig.name | default (include "iap-proxy.fullname" .) }}
{{- end }}

{{- define "iap-proxy.image" -}}
{{- $tag := .Values.image.tag | default .Chart.AppVersion -}}
{{- if .Values.image.digest -}}
{{- printf "%s:%s@%s" .Values.image.repository $tag .Values.image.digest }}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository $tag }}
{{- end -}}
{{- end }}

{{/*
A duration of config.yaml (500ms, 15s, 5m, 1h, or plain seconds) in whole seconds, rounded up.
*/}}
{{- define "iap-proxy.seconds" -}}
{{- $s := toString . -}}
{{- if hasSuffix "ms" $s -}}
{{- div (add (trimSuffix "ms" $s | atoi) 999) 1000 }}
{{- else if hasSuffix "s" $s -}}
{{- trimSuffix "s" $s | atoi }}
{{- else if hasSuffix "m" $s -}}
{{- mul (trimSuffix "m" $s | atoi) 60 }}
{{- else if hasSuffix "h" $s -}}
{{- mul (trimSuffix "h" $s | atoi) 3600 }}
{{- else -}}
{{- atoi $s }}
{{- end -}}
{{- end }}

{{/*
Checks that JSON schema cannot express, with messages that say what to set. Included by every
template (it renders nothing), so `helm template` fails early and clearly.
*/}}
{{- define "iap-proxy.validate" -}}
{{- $_ := required "audiences is required: the IAP audience(s) of your load balancer's backend service, e.g. --set 'audiences[0]=/projects/123456789012/global/backendServices/987654321'" .Values.audiences -}}
{{- if not .Values.audiences -}}
{{- fail "audiences is empty: set at least one IAP audience, e.g. /projects/PROJECT_NUMBER/global/backendServices/BACKEND_SERVICE_ID (gcloud compute backend-services describe NAME --global --format='value(id)')" -}}
{{- end -}}
{{- if not (has .Values.mode (list "sidecar" "standalone")) -}}
{{- fail (printf "mode must be sidecar or standalone, not %q" .Values.mode) -}}
{{- end -}}
{{- if and (not .Values.routes) (not .Values.allowlist.entries) (not .Values.allowlist.groups) -}}
{{- fail "allowlist.entries and allowlist.groups are both empty, so the default route would admit nobody: list who may pass (e.g. allowlist.entries: [example.com]) or set routes" -}}
{{- end -}}
{{- if and (eq .Values.mode "standalone") (regexMatch "^https?://(127\\.|localhost|\\[::1\\])" .Values.upstream) -}}
{{- fail (printf "mode standalone: upstream %s is this pod's loopback; point it at the app's Service (http://NAME.NAMESPACE.svc.cluster.local:PORT) or use mode: sidecar" .Values.upstream) -}}
{{- end -}}
{{- $drain := include "iap-proxy.seconds" (.Values.timeouts.drain | default "30s") | int -}}
{{- if le (int .Values.terminationGracePeriodSeconds) (add $drain (int .Values.preStopSleepSeconds)) -}}
{{- fail (printf "terminationGracePeriodSeconds (%d) must exceed preStopSleepSeconds (%d) + timeouts.drain (%ds), or the kubelet kills iap-proxy mid-drain" (int .Values.terminationGracePeriodSeconds) (int .Values.preStopSleepSeconds) $drain) -}}
{{- end -}}
{{- if and .Values.networkPolicy.enabled (eq .Values.mode "sidecar") (not .Values.sidecar.podSelector) -}}
{{- fail "networkPolicy.enabled in sidecar mode needs sidecar.podSelector: the labels of your app's pods" -}}
{{- end -}}
{{- if and .Values.backendConfig.enabled (not .Values.healthPath) (not .Values.backendConfig.healthCheck.requestPath) -}}
{{- fail "backendConfig.enabled needs a health check path the proxy answers without an assertion: set healthPath (default /lb-health) or backendConfig.healthCheck.requestPath" -}}
{{- end -}}
{{- end }}

{{/*
config.yaml. Route and allowlist edits are reloaded live by iap-proxy; listener, upstream, audience
and key settings need a restart (standalone mode restarts on any change of this file, through the
checksum/config annotation).
*/}}
{{- define "iap-proxy.configYaml" -}}
{{- $routes := list -}}
{{- if .Values.healthPath -}}
{{- $routes = append $routes (dict "name" "lb-health" "match" (dict "path" .Values.healthPath) "respond" "ok") -}}
{{- end -}}
{{- if .Values.appHealthPath -}}
{{- $routes = append $routes (dict "name" "app-health" "match" (dict "path" .Values.appHealthPath) "auth" "none") -}}
{{- end -}}
{{- if .Values.routes -}}
{{- $routes = concat $routes .Values.routes -}}
{{- else -}}
{{- $routes = append $routes (dict "name" "default" "match" (dict "path_prefix" "/") "allow" (list "file:allowlist.txt")) -}}
{{- end -}}
{{- $keys := dict "url" .Values.keys.url -}}
{{- if .Values.keys.cacheDir -}}
{{- $_ := set $keys "cache" (printf "%s/jwks.json" (trimSuffix "/" .Values.keys.cacheDir)) -}}
{{- end -}}
{{- $cfg := dict
  "listen" (printf "0.0.0.0:%d" (int .Values.ports.proxy))
  "admin_listen" (printf "0.0.0.0:%d" (int .Values.ports.admin))
  "upstream" .Values.upstream
  "audiences" .Values.audiences
  "headers" .Values.preset
  "access_log" (ternary "on" "off" .Values.accessLog)
  "keys" $keys
  "routes" $routes
-}}
{{- with .Values.timeouts }}
{{- $_ := set $cfg "timeouts" . -}}
{{- end }}
{{- $cfg = merge $cfg (deepCopy .Values.config) -}}
# iap-proxy configuration (docs/CONFIG.md), rendered by the iap-proxy Helm chart.
{{ toYaml $cfg }}
{{- end }}

{{/*
allowlist.txt: allowlist.entries, then one [group NAME] section per allowlist.groups entry.
*/}}
{{- define "iap-proxy.allowlistTxt" -}}
# iap-proxy allowlist (docs/CONFIG.md), rendered by the iap-proxy Helm chart from
# allowlist.entries and allowlist.groups. Edits are picked up live, without a restart.
{{- range .Values.allowlist.entries }}
{{ . }}
{{- end }}
{{- range $name, $members := .Values.allowlist.groups }}
[group {{ $name }}]
{{- range $members }}
{{ . }}
{{- end }}
{{- end }}
{{- end }}

{{/*
The iap-proxy container, as a list item: paste into a pod spec's `containers:` (or, with
sidecar.native, `initContainers:`), together with "iap-proxy.sidecarVolumes" under `volumes:`.
*/}}
{{- define "iap-proxy.sidecarContainer" -}}
- name: iap-proxy
  image: {{ include "iap-proxy.image" . }}
  imagePullPolicy: {{ .Values.image.pullPolicy }}
  {{- if and .Values.sidecar.native (ne .Values.mode "standalone") }}
  restartPolicy: Always
  {{- end }}
  args:
    - serve
    - --config
    - /etc/iap-proxy/config.yaml
    {{- range .Values.extraArgs }}
    - {{ . | quote }}
    {{- end }}
  {{- with .Values.extraEnv }}
  env:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  ports:
    - name: iap-proxy
      containerPort: {{ .Values.ports.proxy }}
      protocol: TCP
    - name: iap-admin
      containerPort: {{ .Values.ports.admin }}
      protocol: TCP
  {{- with .Values.probes.startup }}
  startupProbe:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.probes.liveness }}
  livenessProbe:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.probes.readiness }}
  readinessProbe:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- if .Values.preStopSleepSeconds }}
  lifecycle:
    preStop:
      sleep:
        seconds: {{ .Values.preStopSleepSeconds }}
  {{- end }}
  {{- with .Values.resources }}
  resources:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.securityContext }}
  securityContext:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  volumeMounts:
    - name: iap-proxy-config
      mountPath: /etc/iap-proxy
      readOnly: true
    {{- if .Values.keys.cacheDir }}
    - name: iap-proxy-cache
      mountPath: {{ .Values.keys.cacheDir }}
    {{- end }}
{{- end }}

{{/*
The volumes the container mounts: the whole ConfigMap as a directory (never subPath: iap-proxy
follows the kubelet's `..data` symlink swap to reload config.yaml and allowlist.txt), and an
emptyDir for the key cache.
*/}}
{{- define "iap-proxy.sidecarVolumes" -}}
- name: iap-proxy-config
  configMap:
    name: {{ include "iap-proxy.configMapName" . }}
{{- if .Values.keys.cacheDir }}
- name: iap-proxy-cache
  emptyDir:
    sizeLimit: 1Mi
{{- end }}
{{- end }}

{{/*
The Service's annotations: the user's, plus GKE's NEG and BackendConfig ones.
*/}}
{{- define "iap-proxy.serviceAnnotations" -}}
{{- $a := deepCopy (.Values.service.annotations | default dict) -}}
{{- if .Values.service.neg -}}
{{- $_ := set $a "cloud.google.com/neg" "{\"ingress\": true}" -}}
{{- end -}}
{{- if .Values.backendConfig.enabled -}}
{{- $_ := set $a "cloud.google.com/backend-config" (printf "{\"default\": %q}" (include "iap-proxy.backendConfigName" .)) -}}
{{- end -}}
{{- with $a }}
{{- toYaml . }}
{{- end }}
{{- end }}

{{/*
The pods the Service and NetworkPolicy select: iap-proxy's own (standalone) or the app's (sidecar).
*/}}
{{- define "iap-proxy.targetPodLabels" -}}
{{- if eq .Values.mode "standalone" -}}
{{ include "iap-proxy.selectorLabels" . }}
{{- else -}}
{{ toYaml .Values.sidecar.podSelector }}
{{- end -}}
{{- end }}
