variable "project" {
  description = "Name prefix of every resource (lower case, digits and dashes)."
  type        = string
  default     = "churnctl"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,20}$", var.project))
    error_message = "project: 2-21 characters, lower case letters, digits and dashes."
  }
}

variable "environment" {
  description = "Environment name, e.g. staging or production (matches the kustomize overlay)."
  type        = string
  default     = "staging"
}

variable "primary_region" {
  description = "AWS region of the v1-v3 stack (VPC, EKS, bucket, ECR)."
  type        = string
  default     = "eu-west-1"
}

variable "secondary_region" {
  description = "AWS region of the second stack for v4 (used when enable_secondary_region)."
  type        = string
  default     = "us-east-1"
}

variable "enable_secondary_region" {
  description = "v4: create the same stack in secondary_region too (multi-region serving)."
  type        = bool
  default     = false
}

variable "vpc_cidr" {
  description = "CIDR of the primary region's VPC (a /16 is split into public and private /20s)."
  type        = string
  default     = "10.20.0.0/16"
}

variable "secondary_vpc_cidr" {
  description = "CIDR of the secondary region's VPC; must not overlap vpc_cidr (peering)."
  type        = string
  default     = "10.30.0.0/16"
}

variable "availability_zones" {
  description = "How many availability zones each VPC spans (2 or 3)."
  type        = number
  default     = 2

  validation {
    condition     = var.availability_zones >= 2 && var.availability_zones <= 3
    error_message = "availability_zones: 2 or 3."
  }
}

variable "kubernetes_version" {
  description = "EKS control plane version."
  type        = string
  default     = "1.31"
}

variable "node_instance_types" {
  description = "Instance types of the EKS managed node group."
  type        = list(string)
  default     = ["m6i.large"]
}

variable "node_count" {
  description = "Desired, min and max nodes of the managed node group."
  type = object({
    desired = number
    min     = number
    max     = number
  })
  default = {
    desired = 2
    min     = 2
    max     = 4
  }
}

variable "api_public_access_cidrs" {
  description = "CIDRs allowed to reach the EKS API endpoint publicly; empty keeps it private."
  type        = list(string)
  default     = []
}

variable "kubernetes_namespace" {
  description = "Namespace of the churn workloads (infra/k8s: churn)."
  type        = string
  default     = "churn"
}

variable "service_accounts" {
  description = "Kubernetes service accounts that get IRSA roles: API, MLflow, pipeline jobs."
  type = object({
    api      = string
    mlflow   = string
    pipeline = string
  })
  default = {
    api      = "churn-api"
    mlflow   = "mlflow"
    pipeline = "churn-pipeline"
  }
}

variable "artifact_retention_days" {
  description = "Days noncurrent versions of DVC and MLflow objects are kept."
  type        = number
  default     = 90
}

variable "tags" {
  description = "Extra tags on every resource."
  type        = map(string)
  default     = {}
}
