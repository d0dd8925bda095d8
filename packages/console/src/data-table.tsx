import type { ComponentChildren } from 'preact';

/** Props of {@link DataTable}. */
export interface DataTableProps {
  /** The table's class: what the stylesheet and the tests find it by. */
  cls: string;
  /** What the rows are, and how many of how many. */
  caption: ComponentChildren;
  /** Column headers, in order; `false` leaves a column out (one only some views show). */
  columns: readonly (ComponentChildren | false)[];
  /** The rows. */
  children: ComponentChildren;
}

/**
 * The console's one table markup: a scrolling wrapper, a caption, a header cell per column
 * (`scope="col"`), then the rows. Every list view draws its table with it.
 */
export function DataTable({ cls, caption, columns, children }: DataTableProps) {
  return (
    <div class="table-wrap">
      <table class={cls}>
        <caption>{caption}</caption>
        <thead>
          <tr>
            {columns.map(
              (c, i) =>
                c !== false && (
                  <th scope="col" key={i}>
                    {c}
                  </th>
                ),
            )}
          </tr>
        </thead>
        <tbody>{children}</tbody>
      </table>
    </div>
  );
}
