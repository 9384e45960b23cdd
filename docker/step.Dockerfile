# Example: bake podvisor into a step (or agent) image as its ENTRYPOINT.
#
#   docker build -f docker/step.Dockerfile --build-arg PODVISOR_IMAGE=podvisor -t my-step docker/
#   docker run --rm -v ws:/workspace -e PODVISOR_WAIT_TCP=db:5432 my-step make test
#
# Everything after the image name is the step: the ENTRYPOINT ends with `--`, so podvisor never
# reads the step's arguments as its own. Configuration comes from PODVISOR_* variables (set here
# as defaults, overridden by `docker run -e`, a pod spec's env: or a pipeline's env:), because
# nobody can add flags to an ENTRYPOINT. The tests build this file (tests/docker_stop.rs).

# The podvisor image (docker/Dockerfile), or any image holding /podvisor.
ARG PODVISOR_IMAGE=podvisor:latest
# The step's own image; anything with a Linux kernel ABI works: Debian, Alpine, distroless.
ARG BASE_IMAGE=debian:bookworm-slim

FROM ${PODVISOR_IMAGE} AS podvisor

FROM ${BASE_IMAGE}
COPY --from=podvisor /podvisor /usr/local/bin/podvisor
# The marker tells the pod's ordinary sidecars (`--until-marker`) that the step has ended; a
# signal from `docker stop` or the kubelet is forwarded to the step, which gets the grace period
# before SIGKILL: 8s stays under the stop timeout of Docker (10s) and of the kubelet (30s).
ENV PODVISOR_MARKER=/workspace/podvisor/step.json \
    PODVISOR_GRACE_PERIOD=8s
ENTRYPOINT ["/usr/local/bin/podvisor", "--"]
CMD ["sh", "-c", "echo 'no step given: docker run IMAGE COMMAND...'; exit 2"]
