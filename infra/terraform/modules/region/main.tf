# One region's stack: network (v1), EKS with an OIDC provider (v1, and IRSA for v2), the
# artifact bucket and the IRSA roles (v2), ECR repositories for the images.
module "network" {
  source = "../network"

  name               = var.name
  cidr               = var.vpc_cidr
  availability_zones = var.availability_zones
}

module "eks" {
  source = "../eks"

  name                    = var.name
  kubernetes_version      = var.kubernetes_version
  vpc_id                  = module.network.vpc_id
  subnet_ids              = module.network.private_subnet_ids
  node_instance_types     = var.node_instance_types
  node_count              = var.node_count
  api_public_access_cidrs = var.api_public_access_cidrs
}

module "storage" {
  source = "../storage"

  name           = var.name
  retention_days = var.artifact_retention_days
}

module "ecr" {
  source = "../ecr"

  name         = var.name
  repositories = ["churn-api", "churn-pipeline"]
}

# IRSA: each workload's service account assumes its own role; each role reaches only its prefix.
module "irsa_api" {
  source = "../irsa"

  role_name         = "${var.name}-api"
  oidc_provider_arn = module.eks.oidc_provider_arn
  oidc_issuer       = module.eks.oidc_issuer
  namespace         = var.kubernetes_namespace
  service_account   = var.service_accounts.api
  bucket_arn        = module.storage.bucket_arn
  kms_key_arn       = module.storage.kms_key_arn
  read_prefixes     = ["mlflow/"] # the API loads the champion model's artifacts
  write_prefixes    = []
}

module "irsa_mlflow" {
  source = "../irsa"

  role_name         = "${var.name}-mlflow"
  oidc_provider_arn = module.eks.oidc_provider_arn
  oidc_issuer       = module.eks.oidc_issuer
  namespace         = var.kubernetes_namespace
  service_account   = var.service_accounts.mlflow
  bucket_arn        = module.storage.bucket_arn
  kms_key_arn       = module.storage.kms_key_arn
  read_prefixes     = ["mlflow/"]
  write_prefixes    = ["mlflow/"]
}

module "irsa_pipeline" {
  source = "../irsa"

  role_name         = "${var.name}-pipeline"
  oidc_provider_arn = module.eks.oidc_provider_arn
  oidc_issuer       = module.eks.oidc_issuer
  namespace         = var.kubernetes_namespace
  service_account   = var.service_accounts.pipeline
  bucket_arn        = module.storage.bucket_arn
  kms_key_arn       = module.storage.kms_key_arn
  read_prefixes     = ["dvc/", "mlflow/"]
  write_prefixes    = ["dvc/", "mlflow/"] # DVC pushes data; training logs model artifacts
}
