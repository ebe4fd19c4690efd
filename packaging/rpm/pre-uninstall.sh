# eks-node-agent %preun: on erase ($1 = 0, not an upgrade) stop the daemon and disable the
# units. containerd and the kubelet keep running; the node's configuration stays.
UNITS="eks-node-agent-init-config.service eks-node-agent-init.service eks-node-agent.service"
if [ "$1" -eq 0 ]; then
    if [ -d /run/systemd/system ]; then
        systemctl stop eks-node-agent.service >/dev/null 2>&1 || :
    fi
    systemctl --no-reload disable $UNITS >/dev/null 2>&1 || :
fi
