variable "name" {
  description = "Prefix of the bucket name (the account id and region are appended)."
  type        = string
}

variable "retention_days" {
  description = "Days noncurrent object versions are kept."
  type        = number
}
