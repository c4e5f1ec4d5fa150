# The image of scheduled backups (DESIGN.md section 12): the plugin alone, linked statically,
# with Mozilla's root certificates and the time zone database compiled in. In a pod it finds
# the cluster through the service account the kubelet mounts (no kubeconfig).
#
#   krew/package.sh                     # writes dist/image/: this file and the static plugin
#   docker build -t IMAGE dist/image
#
# Nothing else is in it: no shell, no libc, no /etc, no /tmp (the CronJob mounts an emptyDir
# for scratch space). It runs as a non-root user, whatever the pod's securityContext says.
FROM scratch
COPY kubectl-mlbackup /kubectl-mlbackup
USER 65532:65532
ENTRYPOINT ["/kubectl-mlbackup"]
