{{- define "auscult.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "auscult.labels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{/* An image of the project: include "auscult.image" (list . "runtime") */}}
{{- define "auscult.image" -}}
{{- $root := index . 0 -}}
{{- printf "%s/auscult-%s:%s" $root.Values.image.registry (index . 1) (default $root.Chart.AppVersion $root.Values.image.tag) -}}
{{- end -}}

{{- define "auscult.serviceAccountName" -}}
{{- default (include "auscult.fullname" .) .Values.serviceAccount.name -}}
{{- end -}}

{{- define "auscult.storeUri" -}}
{{- printf "s3://%s/%s" .Values.objectStore.bucket .Values.objectStore.prefix | trimSuffix "/" -}}
{{- end -}}

{{/* Object-store credentials, from the Secret only. */}}
{{- define "auscult.storeEnv" -}}
- name: AUSCULT_STORE_URI
  value: {{ include "auscult.storeUri" . | quote }}
{{- range $key, $env := dict "endpoint" "AUSCULT_S3_ENDPOINT" "access-key" "AWS_ACCESS_KEY_ID" "secret-key" "AWS_SECRET_ACCESS_KEY" "secure" "AUSCULT_S3_SECURE" }}
- name: {{ $env }}
  valueFrom:
    secretKeyRef:
      name: {{ $.Values.objectStore.existingSecret }}
      key: {{ $key }}
{{- end }}
{{- end -}}

{{/* The predictor's keys, from their Secrets only: request-id signing (feedback) and pseudonymisation. */}}
{{- define "auscult.servingKeyEnv" -}}
- name: AUSCULT_FEEDBACK_KEY
  valueFrom:
    secretKeyRef:
      name: {{ .Values.feedbackSecret }}
      key: key
- name: AUSCULT_PSEUDONYM_KEY
  valueFrom:
    secretKeyRef:
      name: {{ .Values.pseudonymSecret }}
      key: key
{{- end -}}

{{- define "auscult.podSecurity" -}}
runAsNonRoot: true
runAsUser: 10001
runAsGroup: 10001
fsGroup: 10001
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{- define "auscult.containerSecurity" -}}
allowPrivilegeEscalation: false
capabilities:
  drop: ["ALL"]
readOnlyRootFilesystem: true
{{- end -}}

{{/* The predictor's own service account: bound to no Role, no token mounted. */}}
{{- define "auscult.predictorServiceAccountName" -}}
{{- printf "%s-predictor" (include "auscult.serviceAccountName" .) -}}
{{- end -}}

{{/* The training job's workers' own service account: bound to no Role, no token mounted. */}}
{{- define "auscult.trainerServiceAccountName" -}}
{{- printf "%s-trainer" (include "auscult.serviceAccountName" .) -}}
{{- end -}}

{{/* Under a read-only root filesystem, the temporary folder is an emptyDir: mount and volume. */}}
{{- define "auscult.scratchMount" -}}
- name: scratch
  mountPath: /tmp
{{- end -}}
{{- define "auscult.scratchVolume" -}}
- name: scratch
  emptyDir: {}
{{- end -}}

{{- define "auscult.gpuPlacement" -}}
{{- if .Values.gpu.enabled }}
nodeSelector:
  {{- toYaml .Values.gpu.nodeSelector | nindent 2 }}
tolerations:
  {{- toYaml .Values.gpu.tolerations | nindent 2 }}
{{- end }}
{{- end -}}

{{- define "auscult.servingResources" -}}
{{- $resources := deepCopy .Values.seldon.resources -}}
{{- if .Values.gpu.enabled -}}
{{- $gpu := dict "nvidia.com/gpu" (toString .Values.gpu.count) -}}
{{- $_ := set $resources "limits" (merge (deepCopy $gpu) (default dict $resources.limits)) -}}
{{- $_ := set $resources "requests" (merge (deepCopy $gpu) (default dict $resources.requests)) -}}
{{- end -}}
{{- toYaml $resources -}}
{{- end -}}
