output "primary" {
  description = "The primary region's stack: cluster, bucket, IRSA role ARNs and ECR URLs."
  value = {
    region                = var.primary_region
    cluster_name          = module.primary.cluster_name
    cluster_endpoint      = module.primary.cluster_endpoint
    bucket                = module.primary.bucket
    dvc_remote            = module.primary.dvc_remote
    mlflow_artifacts      = module.primary.mlflow_artifacts
    irsa_role_arns        = module.primary.irsa_role_arns
    ecr_repository_urls   = module.primary.ecr_repository_urls
    oidc_provider_arn     = module.primary.oidc_provider_arn
    vpc_id                = module.primary.vpc_id
    private_subnet_ids    = module.primary.private_subnet_ids
  }
}

output "secondary" {
  description = "The v4 second region's stack (null unless enable_secondary_region)."
  value = var.enable_secondary_region ? {
    region              = var.secondary_region
    cluster_name        = module.secondary[0].cluster_name
    cluster_endpoint    = module.secondary[0].cluster_endpoint
    bucket              = module.secondary[0].bucket
    dvc_remote          = module.secondary[0].dvc_remote
    mlflow_artifacts    = module.secondary[0].mlflow_artifacts
    irsa_role_arns      = module.secondary[0].irsa_role_arns
    ecr_repository_urls = module.secondary[0].ecr_repository_urls
    oidc_provider_arn   = module.secondary[0].oidc_provider_arn
    vpc_id              = module.secondary[0].vpc_id
    private_subnet_ids  = module.secondary[0].private_subnet_ids
  } : null
}
