variable "name" {
  description = "Cluster name."
  type        = string
}

variable "kubernetes_version" {
  description = "EKS control plane version."
  type        = string
}

variable "vpc_id" {
  description = "VPC of the cluster."
  type        = string
}

variable "subnet_ids" {
  description = "Private subnets for the control plane's interfaces and the nodes."
  type        = list(string)
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
  description = "CIDRs allowed to reach the API publicly; empty: private endpoint only."
  type        = list(string)
}

variable "log_retention_days" {
  description = "Days control plane logs are kept."
  type        = number
  default     = 365
}
