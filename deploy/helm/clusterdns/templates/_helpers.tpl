{{/* The chart's name. */}}
{{- define "clusterdns.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* The full name: the release's, or release-chart when they differ. */}}
{{- define "clusterdns.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "clusterdns.k8sApp" -}}
{{- default "kube-dns" .Values.k8sAppLabelOverride -}}
{{- end -}}

{{/* Labels of every object. */}}
{{- define "clusterdns.labels" -}}
app.kubernetes.io/name: {{ include "clusterdns.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: clusterdns
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- if .Values.isClusterService }}
k8s-app: {{ include "clusterdns.k8sApp" . }}
kubernetes.io/cluster-service: "true"
{{- end }}
{{- with .Values.customLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* The selector of the cluster DNS pods. */}}
{{- define "clusterdns.selectorLabels" -}}
app.kubernetes.io/name: {{ include "clusterdns.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "clusterdns.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "clusterdns.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "clusterdns.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{/* The config file: config plus the listen addresses from ports. */}}
{{- define "clusterdns.config" -}}
{{- range $key := list "listen" "health_listen" "metrics_listen" }}
{{- if hasKey $.Values.config $key }}
{{- fail (printf "config.%s: set ports.dns, ports.health and ports.metrics instead (the chart derives the listen addresses and the pod's ports from them)" $key) }}
{{- end }}
{{- end }}
{{- $listen := dict "listen" (printf ":%v" .Values.ports.dns) "health_listen" (printf ":%v" .Values.ports.health) "metrics_listen" (printf ":%v" .Values.ports.metrics) -}}
{{- toYaml (merge $listen .Values.config) -}}
{{- end -}}

{{/* The cluster DNS ClusterIP the node cache forwards to. */}}
{{- define "clusterdns.clusterDNS" -}}
{{- $ip := default .Values.service.clusterIP .Values.nodeLocal.clusterDNS -}}
{{- if not $ip -}}
{{- fail "nodeLocal.enabled needs the cluster DNS Service's address: set nodeLocal.clusterDNS or service.clusterIP" -}}
{{- end -}}
{{- $ip -}}
{{- end -}}
