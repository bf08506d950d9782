{{/* Names ---------------------------------------------------------------------------- */}}

{{- define "refstore.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* <release>, or <release>-<chart> when the release name does not contain the chart name;
     at most 54 characters so that every "<fullname>-<part>" is a valid DNS-1035 label. */}}
{{- define "refstore.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 54 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 54 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 54 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "refstore.gateway.fullname" -}}{{ include "refstore.fullname" . }}-gateway{{- end -}}
{{- define "refstore.operator.fullname" -}}{{ include "refstore.fullname" . }}-operator{{- end -}}
{{- define "refstore.minio.fullname" -}}{{ include "refstore.fullname" . }}-minio{{- end -}}
{{- define "refstore.tokens.fullname" -}}{{ include "refstore.fullname" . }}-tokens{{- end -}}

{{- define "refstore.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Labels: call with (dict "ctx" $ "component" "gateway") ------------------------------ */}}

{{- define "refstore.selectorLabels" -}}
app.kubernetes.io/name: {{ include "refstore.name" .ctx }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "refstore.labels" -}}
helm.sh/chart: {{ include "refstore.chart" .ctx }}
{{ include "refstore.selectorLabels" . }}
app.kubernetes.io/version: {{ .ctx.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .ctx.Release.Service }}
app.kubernetes.io/part-of: refstore
{{- with .ctx.Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* Images --------------------------------------------------------------------------- */}}

{{- define "refstore.image" -}}
{{- $image := .Values.image -}}
{{- if $image.digest -}}
{{- printf "%s@%s" $image.repository $image.digest -}}
{{- else -}}
{{- printf "%s:%s" $image.repository (default .Chart.AppVersion $image.tag) -}}
{{- end -}}
{{- end -}}

{{- define "refstore.operator.image" -}}
{{- $own := .Values.operator.image -}}
{{- if $own.repository -}}
{{- if $own.digest -}}
{{- printf "%s@%s" $own.repository $own.digest -}}
{{- else -}}
{{- printf "%s:%s" $own.repository (default .Chart.AppVersion $own.tag) -}}
{{- end -}}
{{- else -}}
{{- include "refstore.image" . -}}
{{- end -}}
{{- end -}}

{{/* Service accounts ----------------------------------------------------------------- */}}

{{- define "refstore.gateway.serviceAccountName" -}}
{{- if .Values.gateway.serviceAccount.create -}}
{{- default (include "refstore.gateway.fullname" .) .Values.gateway.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.gateway.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "refstore.operator.serviceAccountName" -}}
{{- if .Values.operator.serviceAccount.create -}}
{{- default (include "refstore.operator.fullname" .) .Values.operator.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.operator.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* Secrets ---------------------------------------------------------------------------- */}}

{{/* One value of a Secret the chart makes: the value given, else the one already in the
     cluster (so a generated value survives `helm upgrade`), else a new random one. The result
     is remembered for the rest of the render, so that the Secret and the checksum annotations
     of the pods see the same value.
     Call with (dict "ctx" $ "secret" NAME "key" KEY "given" VALUE "length" N). */}}
{{- define "refstore.secretValue" -}}
{{- $ctx := .ctx -}}
{{- $memo := $ctx.Values._rendered | default dict -}}
{{- $_ := set $ctx.Values "_rendered" $memo -}}
{{- $id := printf "%s/%s" .secret .key -}}
{{- if not (hasKey $memo $id) -}}
{{- $value := .given | default "" | toString -}}
{{- if not $value -}}
{{- $existing := lookup "v1" "Secret" $ctx.Release.Namespace .secret -}}
{{- if and $existing $existing.data (hasKey $existing.data .key) -}}
{{- $value = index $existing.data .key | b64dec -}}
{{- else -}}
{{- $value = randAlphaNum (int .length) -}}
{{- end -}}
{{- end -}}
{{- $_ := set $memo $id $value -}}
{{- end -}}
{{- index $memo $id -}}
{{- end -}}

{{- define "refstore.tokens.secretName" -}}
{{- default (include "refstore.tokens.fullname" .) .Values.auth.existingSecret -}}
{{- end -}}

{{- define "refstore.tokens.adminKey" -}}
{{- if .Values.auth.existingSecret -}}{{ .Values.auth.existingSecretAdminTokenKey }}{{- else -}}admin-token{{- end -}}
{{- end -}}

{{- define "refstore.tokens.operatorKey" -}}
{{- if .Values.auth.existingSecret -}}{{ .Values.auth.existingSecretOperatorTokenKey }}{{- else -}}operator-token{{- end -}}
{{- end -}}

{{- define "refstore.apiKeys.secretName" -}}
{{- if .Values.auth.apiKeysExistingSecret -}}
{{- .Values.auth.apiKeysExistingSecret -}}
{{- else -}}
{{- include "refstore.fullname" . }}-api-keys
{{- end -}}
{{- end -}}

{{- define "refstore.apiKeys.key" -}}
{{- if .Values.auth.apiKeysExistingSecret -}}{{ .Values.auth.apiKeysExistingSecretKey }}{{- else -}}api-keys.yaml{{- end -}}
{{- end -}}

{{- define "refstore.apiKeys.enabled" -}}
{{- if or .Values.auth.apiKeys .Values.auth.apiKeysExistingSecret -}}true{{- end -}}
{{- end -}}

{{/* The Secret with the MinIO credentials the gateway uses, and its two keys. */}}
{{- define "refstore.minioCredentials.secretName" -}}
{{- if .Values.minio.enabled -}}
{{- default (include "refstore.minio.fullname" .) .Values.minio.existingSecret -}}
{{- else -}}
{{- default (printf "%s-minio-credentials" (include "refstore.fullname" .)) .Values.externalMinio.existingSecret -}}
{{- end -}}
{{- end -}}

{{- define "refstore.minioCredentials.accessKeyKey" -}}
{{- if .Values.minio.enabled -}}root-user
{{- else if .Values.externalMinio.existingSecret -}}{{ .Values.externalMinio.existingSecretAccessKeyKey }}
{{- else -}}access-key
{{- end -}}
{{- end -}}

{{- define "refstore.minioCredentials.secretKeyKey" -}}
{{- if .Values.minio.enabled -}}root-password
{{- else if .Values.externalMinio.existingSecret -}}{{ .Values.externalMinio.existingSecretSecretKeyKey }}
{{- else -}}secret-key
{{- end -}}
{{- end -}}

{{/* Gateway settings ------------------------------------------------------------------- */}}

{{- define "refstore.gateway.tokensDir" -}}/etc/refstore/tokens{{- end -}}
{{- define "refstore.gateway.apiKeysDir" -}}/etc/refstore/api-keys{{- end -}}
{{- define "refstore.gateway.configDir" -}}/etc/refstore/config{{- end -}}

{{/* A dict without the keys whose value is null or "" (one level deep). */}}
{{- define "refstore.compact" -}}
{{- $out := dict -}}
{{- range $key, $value := . -}}
{{- if not (or (kindIs "invalid" $value) (and (kindIs "string" $value) (eq $value ""))) -}}
{{- $_ := set $out $key $value -}}
{{- end -}}
{{- end -}}
{{- toYaml $out -}}
{{- end -}}

{{/* The gateway's YAML settings (refstore/web/settings.py). The MinIO access and secret keys
     come from the environment (REFSTORE_MINIO__ACCESS_KEY / __SECRET_KEY, from a Secret). */}}
{{- define "refstore.gateway.settings" -}}
{{- $config := deepCopy .Values.gateway.config -}}
{{- $operator := .Values.operator.enabled -}}
{{- if $operator -}}
{{- $_ := unset $config "enable_bucket_mapping" -}}
{{- $_ := unset $config "bucket_map" -}}
{{- end -}}
{{- $settings := include "refstore.compact" $config | fromYaml -}}
{{- $_ := set $settings "bucket_mapping_source" (ternary "operator" "config" $operator) -}}
{{- if .Values.minio.enabled -}}
{{- $_ := set $settings "minio" (dict "endpoint" (printf "%s:9000" (include "refstore.minio.fullname" .)) "secure" false) -}}
{{- else -}}
{{- $m := .Values.externalMinio -}}
{{- $minio := dict "endpoint" $m.endpoint "secure" $m.secure "cert_check" $m.certCheck "connect_timeout" $m.connectTimeout "read_timeout" $m.readTimeout -}}
{{- if $m.region -}}{{- $_ := set $minio "region" $m.region -}}{{- end -}}
{{- $_ := set $settings "minio" $minio -}}
{{- end -}}
{{- $auth := dict "mode" .Values.auth.mode -}}
{{- $_ := set $auth "admin_tokens_file" (printf "%s/admin-token" (include "refstore.gateway.tokensDir" .)) -}}
{{- if $operator -}}
{{- $_ := set $auth "mapping_tokens_file" (printf "%s/operator-token" (include "refstore.gateway.tokensDir" .)) -}}
{{- end -}}
{{- if include "refstore.apiKeys.enabled" . -}}
{{- $_ := set $auth "api_keys_file" (printf "%s/api-keys.yaml" (include "refstore.gateway.apiKeysDir" .)) -}}
{{- end -}}
{{- $_ := set $settings "auth" $auth -}}
{{- toYaml (mergeOverwrite $settings (deepCopy .Values.gateway.extraConfig)) -}}
{{- end -}}

{{/* Checks values.schema.json cannot express; each failure says what to set. */}}
{{- define "refstore.validate" -}}
{{- if and .Values.minio.enabled .Values.externalMinio.endpoint -}}
{{- fail "refstore: externalMinio.endpoint is set and so is minio.enabled (the single-node MinIO for evaluation): set minio.enabled=false to use your MinIO" -}}
{{- end -}}
{{- if not (or .Values.minio.enabled .Values.externalMinio.endpoint) -}}
{{- fail "refstore: no storage backend: set externalMinio.endpoint to the host:port of your MinIO (with externalMinio.existingSecret or accessKey and secretKey), or minio.enabled=true for a single-node MinIO for evaluation" -}}
{{- end -}}
{{- if and (not .Values.minio.enabled) (not .Values.externalMinio.existingSecret) (not (and .Values.externalMinio.accessKey .Values.externalMinio.secretKey)) -}}
{{- fail "refstore: the MinIO credentials are missing: set externalMinio.existingSecret (a Secret with the keys access-key and secret-key) or both externalMinio.accessKey and externalMinio.secretKey" -}}
{{- end -}}
{{- if and .Values.gateway.autoscaling.enabled (gt (int .Values.gateway.autoscaling.minReplicas) (int .Values.gateway.autoscaling.maxReplicas)) -}}
{{- fail (printf "refstore: gateway.autoscaling.minReplicas (%v) is above maxReplicas (%v)" .Values.gateway.autoscaling.minReplicas .Values.gateway.autoscaling.maxReplicas) -}}
{{- end -}}
{{- if and .Values.gateway.pdb.enabled (not (kindIs "invalid" .Values.gateway.pdb.minAvailable)) (not (kindIs "invalid" .Values.gateway.pdb.maxUnavailable)) -}}
{{- fail "refstore: set gateway.pdb.minAvailable or gateway.pdb.maxUnavailable, not both (set the other to null)" -}}
{{- end -}}
{{- if and .Values.auth.apiKeys .Values.auth.apiKeysExistingSecret -}}
{{- fail "refstore: set auth.apiKeys or auth.apiKeysExistingSecret, not both" -}}
{{- end -}}
{{- end -}}

{{/* The checksum of every Secret the chart makes (tokens, project keys, MinIO credentials):
     it changes, and rolls the pods, when one of them does. */}}
{{- define "refstore.secretsChecksum" -}}
{{- $secrets := include (print .Template.BasePath "/secrets.yaml") . -}}
{{- if .Values.minio.enabled -}}
{{- $secrets = print $secrets (include "refstore.minio.secret" .) -}}
{{- end -}}
{{- $secrets | sha256sum -}}
{{- end -}}

{{/* The bundled MinIO's root credentials (also the gateway's access and secret key). */}}
{{- define "refstore.minio.secret" -}}
{{- if and .Values.minio.enabled (not .Values.minio.existingSecret) -}}
apiVersion: v1
kind: Secret
metadata:
  name: {{ include "refstore.minio.fullname" . }}
  namespace: {{ .Release.Namespace }}
  labels:
    {{- include "refstore.labels" (dict "ctx" $ "component" "minio") | nindent 4 }}
type: Opaque
data:
  root-user: {{ .Values.minio.rootUser | b64enc | quote }}
  root-password: {{ include "refstore.secretValue" (dict "ctx" $ "secret" (include "refstore.minio.fullname" .) "key" "root-password" "given" .Values.minio.rootPassword "length" 40) | b64enc | quote }}
{{- end -}}
{{- end -}}
