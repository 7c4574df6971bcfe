variable "role_name" {
  description = "IAM role name."
  type        = string
}

variable "oidc_provider_arn" {
  description = "ARN of the cluster's IAM OIDC provider."
  type        = string
}

variable "oidc_issuer" {
  description = "OIDC issuer without https:// (oidc.eks.REGION.amazonaws.com/id/...)."
  type        = string
}

variable "namespace" {
  description = "Namespace of the service account."
  type        = string
}

variable "service_account" {
  description = "Service account that may assume the role."
  type        = string
}

variable "bucket_arn" {
  description = "Artifact bucket ARN."
  type        = string
}

variable "kms_key_arn" {
  description = "Key of the bucket (decrypt for reads, generate data keys for writes)."
  type        = string
}

variable "read_prefixes" {
  description = "Key prefixes the role may list and read (e.g. mlflow/)."
  type        = list(string)
}

variable "write_prefixes" {
  description = "Key prefixes the role may also write and delete."
  type        = list(string)
}
