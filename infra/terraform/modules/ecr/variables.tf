variable "name" {
  description = "Prefix of the repository names."
  type        = string
}

variable "repositories" {
  description = "Repository names (under the prefix): the API image and the pipeline image."
  type        = list(string)
}

variable "keep_images" {
  description = "Tagged images kept per repository; older ones expire."
  type        = number
  default     = 50
}
