variable "name" {
  description = "Prefix of the network's resources."
  type        = string
}

variable "cidr" {
  description = "VPC CIDR (a /16: public and private /20 subnets per availability zone)."
  type        = string
}

variable "availability_zones" {
  description = "How many availability zones to span."
  type        = number
}

variable "flow_log_retention_days" {
  description = "Days VPC flow logs are kept in CloudWatch."
  type        = number
  default     = 365
}
