import { LabIcon } from '@jupyterlab/ui-components';

// A stack of pictures; `jp-icon3` lets the theme colour it.
const svgstr = `<svg xmlns="http://www.w3.org/2000/svg" width="16" height="16" viewBox="0 0 24 24">
  <g class="jp-icon3" fill="#616161">
    <path d="M3 6h2v13h13v2H5a2 2 0 0 1-2-2V6z"/>
    <path d="M9 3h10a2 2 0 0 1 2 2v10a2 2 0 0 1-2 2H9a2 2 0 0 1-2-2V5a2 2 0 0 1 2-2zm0 2v10h10V5H9z"/>
    <path d="M10.5 13.5 13 10.3l1.8 2.2 2.2-2.9 2 3.9h-8.5z"/>
    <circle cx="12" cy="7.5" r="1.2"/>
  </g>
</svg>`;

export const assetsIcon = new LabIcon({ name: 'jupyter-assets:library', svgstr });
