output "vpc_id" {
  description = "The VPC's id."
  value       = module.network.vpc_id
}

output "private_subnet_ids" {
  description = "Private subnets (nodes, internal load balancers)."
  value       = module.network.private_subnet_ids
}

output "cluster_name" {
  description = "EKS cluster name (aws eks update-kubeconfig --name ...)."
  value       = module.eks.cluster_name
}

output "cluster_endpoint" {
  description = "EKS API endpoint."
  value       = module.eks.cluster_endpoint
}

output "oidc_provider_arn" {
  description = "The cluster's IAM OIDC provider (IRSA)."
  value       = module.eks.oidc_provider_arn
}

output "bucket" {
  description = "Artifact bucket name."
  value       = module.storage.bucket_name
}

output "dvc_remote" {
  description = "DVC remote URL: the v2 profile's orchestrator.options.remote."
  value       = "s3://${module.storage.bucket_name}/dvc"
}

output "mlflow_artifacts" {
  description = "MLflow --default-artifact-root."
  value       = "s3://${module.storage.bucket_name}/mlflow"
}

output "irsa_role_arns" {
  description = "Role ARNs for the eks.amazonaws.com/role-arn annotation of each service account."
  value = {
    api      = module.irsa_api.role_arn
    mlflow   = module.irsa_mlflow.role_arn
    pipeline = module.irsa_pipeline.role_arn
  }
}

output "ecr_repository_urls" {
  description = "Image repositories: churn-api (the API) and churn-pipeline (the CronJobs)."
  value       = module.ecr.repository_urls
}
