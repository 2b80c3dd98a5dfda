// Package check holds the offline checks of the container image and the Helm
// chart: the Dockerfile's binary is static and runs as a non-root user, the
// chart lints, renders with every example values file, decodes strictly
// against the Kubernetes and Prometheus Operator API types, and every pod
// meets the restricted Pod Security Standard. It is a module of its own so
// that the service's go.mod does not carry helm and client-go.
package check
