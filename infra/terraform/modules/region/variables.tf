variable "name" {
  description = "Prefix of every resource in this region (project-environment[-n])."
  type        = string
}

variable "vpc_cidr" {
  description = "CIDR of this region's VPC."
  type        = string
}

variable "availability_zones" {
  description = "How many availability zones the VPC spans."
  type        = number
}

variable "kubernetes_version" {
  description = "EKS control plane version."
  type        = string
}

variable "node_instance_types" {
  description = "Instance types of the managed node group."
  type        = list(string)
}

variable "node_count" {
  description = "Desired, min and max nodes."
  type = object({
    desired = number
    min     = number
    max     = number
  })
}

variable "api_public_access_cidrs" {
  description = "CIDRs allowed to reach the EKS API publicly; empty keeps it private."
  type        = list(string)
}

variable "kubernetes_namespace" {
  description = "Namespace of the churn workloads."
  type        = string
}

variable "service_accounts" {
  description = "Service account names of the API, MLflow and the pipeline jobs."
  type = object({
    api      = string
    mlflow   = string
    pipeline = string
  })
}

variable "artifact_retention_days" {
  description = "Days noncurrent object versions are kept."
  type        = number
}
