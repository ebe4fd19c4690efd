# eks-node-agent %post: enable (never start) the boot units on first installation, and provide
# kubelet.service on hosts that have none. $1 is the number of installed versions (1: install).
UNITS="eks-node-agent-init-config.service eks-node-agent-init.service eks-node-agent.service"
KUBELET_UNIT=/usr/share/eks-node-agent/systemd/kubelet.service
KUBELET_LINK=/etc/systemd/system/kubelet.service
has_kubelet_unit=no
for dir in /etc/systemd/system /run/systemd/system /usr/local/lib/systemd/system \
    /usr/lib/systemd/system /lib/systemd/system; do
    if [ -e "$dir/kubelet.service" ] || [ -L "$dir/kubelet.service" ]; then
        has_kubelet_unit=yes
    fi
done
if [ "$has_kubelet_unit" = no ]; then
    ln -s "$KUBELET_UNIT" "$KUBELET_LINK"
fi
if [ "$1" -eq 1 ]; then
    # --no-reload: works in an image build or chroot where systemd is not running.
    systemctl --no-reload enable $UNITS >/dev/null 2>&1 || :
fi
if [ -d /run/systemd/system ]; then
    systemctl daemon-reload >/dev/null 2>&1 || :
fi
