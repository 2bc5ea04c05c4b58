/**
 * A one-layer OCI image archive (image-spec v1.0 layout, tarred) holding Debian's static
 * busybox, for `ctr images import`: no registry, no network.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { must } from '../harness/world.js';

export function busyboxOciArchive(out: string, name: string, busybox = '/bin/busybox'): void {
  const work = `${out}.d`;
  fs.rmSync(work, { recursive: true, force: true });
  const root = path.join(work, 'rootfs');
  fs.mkdirSync(path.join(root, 'bin'), { recursive: true });
  fs.mkdirSync(path.join(root, 'www'));
  fs.copyFileSync(busybox, path.join(root, 'bin/busybox'));
  fs.chmodSync(path.join(root, 'bin/busybox'), 0o755);
  for (const a of ['sh', 'ping', 'sleep', 'httpd', 'wget', 'cat']) fs.symlinkSync('busybox', path.join(root, 'bin', a));
  fs.writeFileSync(path.join(root, 'www/index.html'), 'hello from nsnet\n');
  const layout = path.join(work, 'layout');
  const blobs = path.join(layout, 'blobs/sha256');
  fs.mkdirSync(blobs, { recursive: true });
  must(`tar -C ${root} -cf ${work}/layer.tar .`);
  const put = (buf: Buffer): { digest: string; size: number } => {
    const h = crypto.createHash('sha256').update(buf).digest('hex');
    fs.writeFileSync(path.join(blobs, h), buf);
    return { digest: `sha256:${h}`, size: buf.length };
  };
  const layer = put(fs.readFileSync(path.join(work, 'layer.tar')));
  const config = put(Buffer.from(JSON.stringify({
    architecture: process.arch === 'arm64' ? 'arm64' : 'amd64', os: 'linux', config: { Cmd: ['/bin/sh'] },
    rootfs: { type: 'layers', diff_ids: [layer.digest] },
  })));
  const manifest = put(Buffer.from(JSON.stringify({
    schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json',
    config: { mediaType: 'application/vnd.oci.image.config.v1+json', ...config },
    layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar', ...layer }],
  })));
  fs.writeFileSync(path.join(layout, 'index.json'), JSON.stringify({
    schemaVersion: 2,
    manifests: [{ mediaType: 'application/vnd.oci.image.manifest.v1+json', ...manifest, annotations: { 'org.opencontainers.image.ref.name': 'latest', 'io.containerd.image.name': name } }],
  }));
  fs.writeFileSync(path.join(layout, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
  must(`tar -C ${layout} -cf ${out} .`);
}
