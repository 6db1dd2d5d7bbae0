/** The `cdi --help` text. */
export const CDI_USAGE = `gpu-bridge-host cdi: CDI specs for container runtimes (podman, Docker, containerd, CRI-O).

Usage:
  gpu-bridge-host cdi generate [--mock | --backend NAME] [--kind VENDOR/CLASS] [--format json|yaml]
      [--output FILE] [--dev-root DIR] [--driver-root DIR] [--sys-root DIR] [--csv-dir DIR]
      [--hook-path PATH]
      Writes a spec for this host's GPUs as nvidia-ctk does: devices by index, by UUID and all,
      MIG devices, the control nodes that exist, driver libraries, firmware and tools, the
      minimum cdiVersion it needs. Jetson: from the CSV files in --csv-dir (default
      /etc/nvidia-container-runtime/host-files-for-container.d). --output is written
      atomically; its .yaml extension picks YAML. --kind defaults to nvidia.com/gpu; hooks
      (--hook-path, default /usr/bin/nvidia-cdi-hook) only where that file exists.
  gpu-bridge-host cdi validate [--consumer-version X.Y.Z] [--no-host-check] FILE...
      The reference library's rules plus stricter ones (absolute paths, hook timeout > 0,
      bind mounts, device numbers that match this host's nodes). --consumer-version 0.5.0:
      would a consumer with that CDI library (Debian 12's podman 4.3) accept it? Exit 1 when
      any file is invalid.
  gpu-bridge-host cdi apply [--spec-dir DIR]... [--input FILE] [--output FILE] DEVICE...
      Applies the devices' edits to an OCI config.json (stdin unless --input; stdout unless
      --output) by the reference library's rules. Spec folders: lowest priority first
      (default /etc/cdi, then /var/run/cdi). An unknown device changes nothing.
  gpu-bridge-host cdi list [--spec-dir DIR]...
      Prints the qualified names (vendor/class=name) the folders resolve.
`;
