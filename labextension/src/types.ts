// The JSON shapes of `{base_url}api/v1/assets` (see the API contract); only the fields the panel reads.

export type AssetStatus = 'pending' | 'processing' | 'ready' | 'failed';

export interface Derivative {
  kind: string;
  contentType: string;
  size: number;
  width: number | null;
  height: number | null;
  publicUrl: string | null;
}

export interface StructuredResult {
  kind: string;
  payloadJson: string;
  modelId: string | null;
}

export interface ExecutionStep {
  stepName: string;
  succeeded: boolean;
  errorMessage: string | null;
}

export interface ExecutionSummary {
  skillName: string;
  triggerSource: string;
  succeeded: boolean;
  startedAtUtc: string;
  steps: ExecutionStep[];
}

/** A list item; `get` adds derivatives, structured results and the latest run. */
export interface Asset {
  id: string;
  status: AssetStatus;
  originalFileName: string;
  contentType: string;
  size: number;
  width: number | null;
  height: number | null;
  publicUrl: string | null;
  isPublic: boolean;
  description: string | null;
  altText: string | null;
  owner: string;
  createdAtUtc: string;
  updatedAtUtc: string;
  derivatives?: Derivative[];
  structuredResults?: StructuredResult[];
  latestExecutionSummary?: ExecutionSummary | null;
}

export interface AssetPage {
  items: Asset[];
  page: number;
  pageSize: number;
  total: number;
}

export interface Skill {
  name: string;
  description: string;
  steps: string[];
  parameters: unknown;
}

export interface SkillRun {
  succeeded: boolean;
  skillName: string;
  steps: { name: string; succeeded: boolean; errorMessage: string | null }[];
  asset: Asset;
}

export interface UsageStats {
  totalAssets: number;
  totalBytes: number;
}

/** What a dragged card carries as `application/x-jupyter-asset+json`. */
export interface AssetDragPayload {
  id: string;
  name: string;
  altText: string | null;
  url: string;
}

/** One file's outcome in a batch upload: what a single upload of it would have answered. */
export interface BatchUploadItem {
  index: number;
  fileName: string | null;
  status: number;
  data?: Asset;
  error?: { code: string; message: string; traceId: string; status: number };
}

export interface BatchUploadResult {
  items: BatchUploadItem[];
}
