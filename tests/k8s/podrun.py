"""podrun: runs a container of a rendered Kubernetes pod template inside the
built image, the way a kubelet would, with buildah (chroot isolation) on the
host's network. Used by test_chart_wiring.py; no cluster is involved.

What is reproduced, because a chart can get it wrong:
  - command/args over the image's ENTRYPOINT/CMD (Kubernetes' rules: command
    replaces ENTRYPOINT and drops CMD; args alone replace CMD);
  - env: value, valueFrom secretKeyRef / configMapKeyRef / fieldRef
    (metadata.name, metadata.namespace, status.podIP), envFrom;
  - volumes: configMap and secret (items, defaultMode, and the kubelet's
    atomic-writer layout: KEY -> ..data/KEY -> ..<timestamp>/KEY, which is
    what makes a ConfigMap update visible as a symlink swap), emptyDir;
    files belong to root and to the pod's fsGroup, as the kubelet makes them;
  - the user: runAsUser/runAsGroup of the container or the pod.
What is not: the read-only root filesystem (buildah run cannot), resource
limits, a network namespace per pod (so one replica per Deployment: two would
bind the same port), probes (the test calls the probe's path itself).

A reference this module cannot resolve (a Secret other than the test's, an
unknown valueFrom or volume type) raises WiringError: new wiring in the chart
must be taught here, not silently skipped.
"""
import json
import os
import random
import shutil
import signal
import string
import subprocess
import tempfile
import time

SRC = os.environ.get("VIGIL_SOURCE_DIR", os.path.join(os.path.dirname(__file__), "..", ".."))


class WiringError(Exception):
    pass


def buildah_cmd():
    """buildah with the storage scripts/image builds into."""
    opts = subprocess.run([os.path.join(SRC, "scripts", "image"), "--print-root"],
                          capture_output=True, text=True, check=True).stdout.split()
    return ["buildah"] + opts


def image_config(image):
    """(entrypoint, cmd, user) of IMAGE, or raises WiringError if it is not built."""
    p = subprocess.run(buildah_cmd() + ["inspect", "--type", "image", image],
                       capture_output=True, text=True)
    if p.returncode != 0:
        raise WiringError("image %s is not built (run scripts/image): %s" % (image, p.stderr.strip()))
    cfg = json.loads(p.stdout)["OCIv1"]["config"]
    return cfg.get("Entrypoint") or [], cfg.get("Cmd") or [], cfg.get("User", "")


def pod_name(owner):
    """A Deployment pod's name: owner-<template hash>-<5 chars>."""
    rnd = random.Random()
    alnum = string.ascii_lowercase + string.digits
    return "%s-%s-%s" % (owner, "".join(rnd.choice(alnum) for _ in range(9)),
                         "".join(rnd.choice(alnum) for _ in range(5)))


class Pod:
    """One pod of a rendered workload (Deployment or Job): call run(name) for
    one of its containers. objects: every rendered manifest (for ConfigMaps);
    secrets: {secret name: {key: bytes}}, the Secrets that exist."""

    def __init__(self, workload, objects, secrets, image, log_dir):
        self.workload = workload
        self.spec = workload["spec"]["template"]["spec"]
        self.name = pod_name(workload["metadata"]["name"])
        self.objects = objects
        self.secrets = secrets
        self.image = image
        self.dir = tempfile.mkdtemp(prefix="pod-%s-" % self.name, dir=log_dir)
        os.chmod(self.dir, 0o755)
        self.fs_group = (self.spec.get("securityContext") or {}).get("fsGroup")
        self.volumes = {}
        self.proc = None
        self.ctr = None
        self.log_path = None

    # ---- references ------------------------------------------------------

    def configmap(self, name):
        for o in self.objects:
            if o and o.get("kind") == "ConfigMap" and o["metadata"]["name"] == name:
                return {k: v.encode() for k, v in (o.get("data") or {}).items()}
        raise WiringError("ConfigMap %s is not among the rendered objects" % name)

    def secret(self, name):
        if name not in self.secrets:
            raise WiringError("Secret %s does not exist (the test created %s)"
                              % (name, sorted(self.secrets)))
        return self.secrets[name]

    def field(self, path):
        values = {"metadata.name": self.name, "metadata.namespace": "default",
                  "status.podIP": "127.0.0.1", "spec.nodeName": "node-1"}
        if path not in values:
            raise WiringError("fieldRef %s is not emulated" % path)
        return values[path]

    # ---- volumes -----------------------------------------------------------

    def _own(self, path, mode):
        os.chown(path, 0, self.fs_group if self.fs_group is not None else 0)
        os.chmod(path, mode | (0o040 if self.fs_group is not None else 0))

    def _atomic_dir(self, vname, data, items, mode):
        """The kubelet's atomic writer: files in a timestamped folder, ..data
        pointing at it, and each key a symlink through ..data."""
        root = os.path.join(self.dir, "vol-" + vname)
        stamp = time.strftime("..%Y_%m_%d_%H_%M_%S.") + "%06d" % random.randrange(10 ** 6)
        os.makedirs(os.path.join(root, stamp))
        wanted = [(i["key"], i["path"], i.get("mode")) for i in items] if items else \
            [(k, k, None) for k in data]
        for key, path, imode in wanted:
            if key not in data:
                raise WiringError("volume %s projects key %s, which its source lacks" % (vname, key))
            f = os.path.join(root, stamp, path)
            os.makedirs(os.path.dirname(f), exist_ok=True)
            with open(f, "wb") as fh:
                fh.write(data[key])
            self._own(f, imode if imode is not None else mode)
        os.symlink(stamp, os.path.join(root, "..data"))
        for _, path, _ in wanted:
            top = path.split("/")[0]
            if not os.path.lexists(os.path.join(root, top)):
                os.symlink(os.path.join("..data", top), os.path.join(root, top))
        os.chmod(root, 0o755)
        if self.fs_group is not None:
            os.chown(root, 0, self.fs_group)
            os.chown(os.path.join(root, stamp), 0, self.fs_group)
        return root

    def volume(self, vname):
        if vname in self.volumes:
            return self.volumes[vname]
        spec = next((v for v in self.spec.get("volumes") or [] if v["name"] == vname), None)
        if spec is None:
            raise WiringError("volumeMount names volume %s, which the pod does not have" % vname)
        if "configMap" in spec:
            cm = spec["configMap"]
            path = self._atomic_dir(vname, self.configmap(cm["name"]), cm.get("items"),
                                    cm.get("defaultMode", 0o644))
        elif "secret" in spec:
            sc = spec["secret"]
            path = self._atomic_dir(vname, self.secret(sc["secretName"]), sc.get("items"),
                                    sc.get("defaultMode", 0o644))
        elif "emptyDir" in spec:
            path = os.path.join(self.dir, "vol-" + vname)
            os.makedirs(path)
            os.chmod(path, 0o1777)
        else:
            raise WiringError("volume %s: type %s is not emulated" % (vname, sorted(spec)))
        self.volumes[vname] = path
        return path

    # ---- the container -------------------------------------------------------

    def container(self, cname):
        for c in self.spec["containers"]:
            if c["name"] == cname:
                return c
        raise WiringError("no container %s" % cname)

    def environment(self, c):
        env = {}
        for ef in c.get("envFrom") or []:
            prefix = ef.get("prefix", "")
            if "configMapRef" in ef:
                src = self.configmap(ef["configMapRef"]["name"])
            elif "secretRef" in ef:
                src = self.secret(ef["secretRef"]["name"])
            else:
                raise WiringError("envFrom %s is not emulated" % sorted(ef))
            env.update({prefix + k: v.decode() for k, v in src.items()})
        for e in c.get("env") or []:
            if "value" in e:
                env[e["name"]] = str(e["value"])
                continue
            vf = e.get("valueFrom") or {}
            if "secretKeyRef" in vf:
                r = vf["secretKeyRef"]
                data = self.secret(r["name"])
                if r["key"] not in data:
                    raise WiringError("env %s: Secret %s has no key %s" % (e["name"], r["name"], r["key"]))
                env[e["name"]] = data[r["key"]].decode()
            elif "configMapKeyRef" in vf:
                r = vf["configMapKeyRef"]
                env[e["name"]] = self.configmap(r["name"])[r["key"]].decode()
            elif "fieldRef" in vf:
                env[e["name"]] = self.field(vf["fieldRef"]["fieldPath"])
            elif not vf:
                env[e["name"]] = ""
            else:
                raise WiringError("env %s: valueFrom %s is not emulated" % (e["name"], sorted(vf)))
        return env

    def user(self, c):
        sc = dict(self.spec.get("securityContext") or {})
        sc.update(c.get("securityContext") or {})
        uid, gid = sc.get("runAsUser"), sc.get("runAsGroup")
        if uid is None:
            _, _, image_user = image_config(self.image)
            return image_user or "0:0"
        return "%d:%d" % (uid, gid if gid is not None else uid)

    def argv(self, c):
        entry, cmd, _ = image_config(self.image)
        if c.get("command"):
            return list(c["command"]) + list(c.get("args") or [])
        return list(entry) + list(c["args"] if "args" in c else cmd)

    def run(self, cname, extra_env=None):
        """Starts container CNAME; returns the buildah process (its exit status
        is the container's). Output goes to self.log_path."""
        c = self.container(cname)
        if c.get("image") != self.image and c.get("image") != "localhost/" + self.image:
            raise WiringError("container %s runs image %s, not the built %s"
                              % (cname, c.get("image"), self.image))
        b = buildah_cmd()
        self.ctr = subprocess.run(b + ["from", "--pull=never", "--name", self.name, self.image],
                                  capture_output=True, text=True, check=True).stdout.strip()
        args = b + ["run", "--isolation", "chroot", "--user", self.user(c)]
        rootfs = subprocess.run(b + ["mount", self.ctr], capture_output=True, text=True,
                                check=True).stdout.strip()
        for m in c.get("volumeMounts") or []:
            src = self.volume(m["name"])
            if m.get("subPath"):
                src = os.path.join(src, m["subPath"])
            # As runc does, a mount path through a symlink of the image
            # (/var/run -> /run) is resolved inside the image first: buildah
            # would mount under the symlink's target and then hide it under
            # its own /run.
            dest = resolve_in_root(rootfs, m["mountPath"])
            args += ["-v", "%s:%s:%s" % (src, dest, "ro" if m.get("readOnly") else "rw")]
        subprocess.run(b + ["umount", self.ctr], capture_output=True)
        env = self.environment(c)
        env.update(extra_env or {})
        for k, v in env.items():
            args += ["-e", "%s=%s" % (k, v)]
        if c.get("workingDir"):
            args += ["--workingdir", c["workingDir"]]
        args += [self.ctr, "--"] + self.argv(c)
        self.env = env
        self.log_path = os.path.join(self.dir, cname + ".log")
        self.log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(args, stdout=self.log, stderr=subprocess.STDOUT)
        return self.proc

    def main_pid(self, timeout=10):
        """The pid of the container's process (what the kubelet signals):
        the deepest descendant of the buildah process that is not buildah."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            pid = self.proc.pid
            chain = []
            while True:
                kids = _children(pid)
                if not kids:
                    break
                pid = kids[0]
                chain.append(pid)
            for p in chain:
                if _comm(p) not in ("buildah", "memfd:buildah-c") and \
                        not _comm(p).startswith("memfd:"):
                    return p
            if self.proc.poll() is not None:
                return None
            time.sleep(0.05)
        return None

    def text(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def terminate(self, grace):
        """SIGTERM to the container's process, as the kubelet does; waits
        GRACE seconds (terminationGracePeriodSeconds), then SIGKILL. Returns
        (exit status, seconds taken)."""
        t0 = time.monotonic()
        if self.proc.poll() is None:
            pid = self.main_pid()
            if pid:
                os.kill(pid, signal.SIGTERM)
            try:
                self.proc.wait(grace)
            except subprocess.TimeoutExpired:
                if pid:
                    os.kill(pid, signal.SIGKILL)
                self.proc.wait()
        return self.proc.returncode, time.monotonic() - t0

    def wait(self, timeout):
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def remove(self):
        if self.proc is not None and self.proc.poll() is None:
            pid = self.main_pid(timeout=1)
            if pid:
                os.kill(pid, signal.SIGKILL)
            self.proc.wait()
        if self.ctr:
            subprocess.run(buildah_cmd() + ["rm", self.ctr], capture_output=True)
            self.ctr = None
        if getattr(self, "log", None):
            self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)


def _children(pid):
    """Children of PID, from every one of its threads: a Go program such as
    buildah forks from whichever thread runs, and /proc/PID/task/TID/children
    lists only that thread's."""
    out = []
    try:
        tids = os.listdir("/proc/%d/task" % pid)
    except OSError:
        return out
    for tid in tids:
        try:
            with open("/proc/%d/task/%s/children" % (pid, tid)) as f:
                out += [int(x) for x in f.read().split()]
        except OSError:
            pass
    return sorted(set(out))


def _comm(pid):
    try:
        with open("/proc/%d/comm" % pid) as f:
            return f.read().strip()
    except OSError:
        return ""


def resolve_in_root(rootfs, path, depth=0):
    """PATH with the image's symlinks resolved, never leaving ROOTFS (a
    securejoin in the spirit of runc's). Components that do not exist are
    kept as they are: the runtime creates them."""
    if depth > 40:
        raise WiringError("too many symlinks resolving %s" % path)
    out = "/"
    parts = [p for p in path.split("/") if p not in ("", ".")]
    for i, part in enumerate(parts):
        if part == "..":
            out = os.path.dirname(out.rstrip("/")) or "/"
            continue
        cand = os.path.join(out, part)
        host = os.path.join(rootfs, cand.lstrip("/"))
        if os.path.islink(host):
            target = os.readlink(host)
            base = "/" if target.startswith("/") else out
            rest = "/".join(parts[i + 1:])
            return resolve_in_root(rootfs, os.path.join(base, target, rest), depth + 1)
        out = cand
    return out
