# churnctl's cloud: one region module per region. v1 needs the VPC and EKS; v2 adds the
# encrypted, versioned bucket (DVC remote, MLflow artifacts) and IRSA roles for the API, MLflow
# and the pipeline jobs; ECR holds the images; v4 calls the module a second time in another
# region through the aws.secondary provider alias.
locals {
  tags = merge({
    project     = var.project
    environment = var.environment
    managed-by  = "terraform"
  }, var.tags)
}

module "primary" {
  source = "./modules/region"
  providers = {
    aws = aws
  }

  name                    = "${var.project}-${var.environment}"
  vpc_cidr                = var.vpc_cidr
  availability_zones      = var.availability_zones
  kubernetes_version      = var.kubernetes_version
  node_instance_types     = var.node_instance_types
  node_count              = var.node_count
  api_public_access_cidrs = var.api_public_access_cidrs
  kubernetes_namespace    = var.kubernetes_namespace
  service_accounts        = var.service_accounts
  artifact_retention_days = var.artifact_retention_days
}

module "secondary" {
  source = "./modules/region"
  count  = var.enable_secondary_region ? 1 : 0
  providers = {
    aws = aws.secondary
  }

  name                    = "${var.project}-${var.environment}-2"
  vpc_cidr                = var.secondary_vpc_cidr
  availability_zones      = var.availability_zones
  kubernetes_version      = var.kubernetes_version
  node_instance_types     = var.node_instance_types
  node_count              = var.node_count
  api_public_access_cidrs = var.api_public_access_cidrs
  kubernetes_namespace    = var.kubernetes_namespace
  service_accounts        = var.service_accounts
  artifact_retention_days = var.artifact_retention_days
}
