"""The Pod Security Standards' `restricted` profile as the Kubernetes documentation lists its controls
(https://kubernetes.io/docs/concepts/security/pod-security-standards/): everything from the Baseline
policy, then Volume Types, Privilege Escalation, Running as Non-root, Running as Non-root user,
Seccomp and Capabilities. Each check reads the restricted fields the page names and accepts only
its allowed values; `violations(pod_spec)` names the controls a pod spec breaks. Linux pods only
(the OS-specific relaxations for `spec.os.name: windows` are not needed here).
"""

BASELINE_CAPABILITIES = {"AUDIT_WRITE", "CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "MKNOD",
                         "NET_BIND_SERVICE", "SETFCAP", "SETGID", "SETPCAP", "SETUID", "SYS_CHROOT"}
SAFE_SYSCTLS = {"kernel.shm_rmid_forced", "net.ipv4.ip_local_port_range", "net.ipv4.ip_unprivileged_port_start",
                "net.ipv4.tcp_syncookies", "net.ipv4.ping_group_range", "net.ipv4.ip_local_reserved_ports",
                "net.ipv4.tcp_keepalive_time", "net.ipv4.tcp_fin_timeout", "net.ipv4.tcp_keepalive_intvl",
                "net.ipv4.tcp_keepalive_probes"}
SELINUX_TYPES = {"", "container_t", "container_init_t", "container_kvm_t", "container_engine_t"}
RESTRICTED_VOLUMES = {"configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "persistentVolumeClaim",
                      "projected", "secret"}
_PROBES = ("livenessProbe", "readinessProbe", "startupProbe")


def violations(pod: dict, annotations: dict | None = None) -> list[str]:
    """The controls of the restricted profile that `pod` (a PodSpec) breaks."""
    return baseline(pod, annotations or {}) + restricted(pod)


def containers(pod: dict) -> list[dict]:
    return (pod.get("containers") or []) + (pod.get("initContainers") or []) + (pod.get("ephemeralContainers") or [])


def baseline(pod: dict, annotations: dict) -> list[str]:
    context, found = pod.get("securityContext") or {}, []
    every = containers(pod)
    contexts = [context] + [c.get("securityContext") or {} for c in every]
    if any((c.get("windowsOptions") or {}).get("hostProcess") not in (None, False) for c in contexts):
        found.append("HostProcess")
    if any(pod.get(field) not in (None, False) for field in ("hostNetwork", "hostPID", "hostIPC")):
        found.append("Host Namespaces")
    if any((c.get("securityContext") or {}).get("privileged") not in (None, False) for c in every):
        found.append("Privileged Containers")
    added = {cap for c in every
             for cap in ((c.get("securityContext") or {}).get("capabilities") or {}).get("add") or []}
    if not added <= BASELINE_CAPABILITIES:
        found.append("Capabilities")
    if any("hostPath" in volume for volume in pod.get("volumes") or []):
        found.append("HostPath Volumes")
    if any(port.get("hostPort") not in (None, 0) for c in every for port in c.get("ports") or []):
        found.append("Host Ports")
    if any(_host_in_probes(c) for c in every):
        found.append("Host Probes / Lifecycle Hooks")
    apparmor = [(c.get("appArmorProfile") or {}).get("type") for c in contexts]
    apparmor_notes = [v for k, v in annotations.items()
                      if k.startswith("container.apparmor.security.beta.kubernetes.io/")]
    if any(t not in (None, "RuntimeDefault", "Localhost") for t in apparmor) or any(
            v != "runtime/default" and not v.startswith("localhost/") for v in apparmor_notes):
        found.append("AppArmor")
    selinux = [c.get("seLinuxOptions") or {} for c in contexts]
    if any(s.get("type", "") not in SELINUX_TYPES or s.get("user") or s.get("role") for s in selinux):
        found.append("SELinux")
    if any((c.get("securityContext") or {}).get("procMount") not in (None, "Default") for c in every):
        found.append("/proc Mount Type")
    if any((c.get("seccompProfile") or {}).get("type") == "Unconfined" for c in contexts):
        found.append("Seccomp (baseline)")
    if any(sysctl["name"] not in SAFE_SYSCTLS for sysctl in context.get("sysctls") or []):
        found.append("Sysctls")
    return found


def restricted(pod: dict) -> list[str]:
    context, found = pod.get("securityContext") or {}, []
    every = containers(pod)
    own = [c.get("securityContext") or {} for c in every]
    if any(not (set(volume) - {"name"}) <= RESTRICTED_VOLUMES for volume in pod.get("volumes") or []):
        found.append("Volume Types")
    if any(c.get("allowPrivilegeEscalation") is not False for c in own):
        found.append("Privilege Escalation")
    pod_non_root = context.get("runAsNonRoot") is True
    if any(c.get("runAsNonRoot") is False or (c.get("runAsNonRoot") is None and not pod_non_root) for c in own):
        found.append("Running as Non-root")
    if any(c.get("runAsUser") == 0 for c in [context, *own]):
        found.append("Running as Non-root user")
    pod_seccomp = (context.get("seccompProfile") or {}).get("type")
    allowed = ("RuntimeDefault", "Localhost")
    if pod_seccomp not in (None, *allowed):
        found.append("Seccomp")
    for c in own:
        kind = (c.get("seccompProfile") or {}).get("type")
        if kind not in allowed and not (kind is None and pod_seccomp in allowed):
            found.append("Seccomp")
            break
    found = list(dict.fromkeys(found))
    capabilities = [c.get("capabilities") or {} for c in own]
    if any("ALL" not in (caps.get("drop") or []) or not set(caps.get("add") or []) <= {"NET_BIND_SERVICE"}
           for caps in capabilities):
        found.append("Capabilities (restricted)")
    return found


def _host_in_probes(container: dict) -> bool:
    handlers = [container.get(probe) or {} for probe in _PROBES]
    lifecycle = container.get("lifecycle") or {}
    handlers += [lifecycle.get("postStart") or {}, lifecycle.get("preStop") or {}]
    return any((handler.get(kind) or {}).get("host") not in (None, "") for handler in handlers
               for kind in ("httpGet", "tcpSocket"))
