# eks-node-agent %postun: on erase ($1 = 0) remove our kubelet.service link and the agent's
# state. rpm has no separate purge: modified config files are kept as *.rpmsave by rpm itself,
# files the administrator added to /etc/eks-node-agent/config.d/ are not touched.
KUBELET_UNIT=/usr/share/eks-node-agent/systemd/kubelet.service
KUBELET_LINK=/etc/systemd/system/kubelet.service
if [ "$1" -eq 0 ]; then
    if [ -L "$KUBELET_LINK" ] && [ "$(readlink "$KUBELET_LINK")" = "$KUBELET_UNIT" ]; then
        rm -f "$KUBELET_LINK"
    fi
    rm -rf /var/lib/eks-node-agent /run/eks-node-agent
fi
if [ -d /run/systemd/system ]; then
    systemctl daemon-reload >/dev/null 2>&1 || :
fi
if [ "$1" -eq 0 ]; then
    # The directories are not rpm's to remove (only the files are owned); drop them when empty.
    rmdir /etc/eks-node-agent/config.d /etc/eks-node-agent 2>/dev/null || :
fi
