# vigil's container image, in the style of Prometheus's own: the static
# binary `make build` produced on the host, copied into an empty image with
# what it needs from the host. Nothing is pulled, so it builds offline:
#
#   make image          # vigil:VERSION and vigil:latest
#   docker run -d --name vigil -p 9877:9877 -v vigil-data:/data vigil:latest
#
# bin/image/ is staged by `make image` from the host: CA certificates
# (/etc/ssl/certs/ca-certificates.crt, for https checks and notifiers), the
# passwd and group lines of the user it runs as, and an empty data
# directory. No zoneinfo: the binary embeds Go's time/tzdata, so
# global.timezone (Asia/Shanghai) resolves without it.
FROM scratch

LABEL org.opencontainers.image.title="vigil" \
      org.opencontainers.image.description="Health-probe and observability agent" \
      org.opencontainers.image.source="https://github.com/vigil-project/vigil"

COPY bin/image/etc/ /etc/
COPY bin/vigil /bin/vigil
COPY examples/deploy/docker/vigil.yml /etc/vigil/vigil.yml
# A scratch image has no shell to chown with: the empty directory is copied
# in already owned by nobody, so the store can be created in /data (and a
# named volume mounted there starts out with the same owner).
COPY --chown=65534:65534 bin/image/data/ /data/

USER 65534:65534
WORKDIR /data
VOLUME ["/data"]
EXPOSE 9877

# No HEALTHCHECK (there is no shell or curl to run one): orchestrators probe
# GET /-/healthy (liveness) and /-/ready (readiness).
ENTRYPOINT ["/bin/vigil"]
CMD ["run", "--config.file=/etc/vigil/vigil.yml", "--storage.path=/data/vigil.db", "--web.listen-address=:9877"]
